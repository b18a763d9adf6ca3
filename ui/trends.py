"""The /trends page: an endpoint's history as min/avg/max per bucket, appended live, CSV export.

The database buckets the range (bevforge/store/queries.py), so a 12 h brew day draws from ≤ 600 rows. New
readings fold into the newest bucket on the server side of the screen and the chart is redrawn at
most once a second. Only GOOD values are drawn; buckets without a good sample stay gaps.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from bevforge import messages, permissions
from bevforge.config import Endpoint
from bevforge.domain import Actor, EndpointState, Quality, utcnow
from bevforge.runtime import Runtime
from bevforge.store import queries
from ui.controls import tag
from ui.live import LiveView

log = logging.getLogger(__name__)

RANGES = {"15 min": timedelta(minutes=15), "1 h": timedelta(hours=1), "8 h": timedelta(hours=8),
          "Brew day (12 h)": timedelta(hours=12)}
BUCKETS = 600
REDRAW_EVERY_S = 1.0
CARRY_EVERY_S = 1.0  # a steady live value extends the line this often (buckets are ≥ 2 s wide)


def _ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


class TrendView:
    """Chart, range and endpoint pickers, export. A `Sink` for the page's LiveView."""

    def __init__(self, runtime: Runtime, live: LiveView, endpoint_id: int | None, actor: Actor) -> None:
        self.runtime = runtime
        self.live = live
        mine = permissions.visible_endpoints(actor, runtime.config.endpoints)  # a node-limited user: theirs only
        self.choices = {e.id: f"{e.display_name} ({e.node})" for e in mine}
        if not mine:
            raise ValueError(f"user {actor.user} may see no endpoint")
        default = next((e.id for e in mine if e.kind.value == "temperature"), mine[0].id)
        self.endpoint: Endpoint = runtime.plant.endpoints[endpoint_id if endpoint_id in self.choices else default]
        self.span = RANGES["1 h"]
        self.width = 1.0
        self.buckets: list[list[Any]] = []  # [start_ms, min, avg, max, n]
        self._last_draw = 0.0
        self._dirty = False
        with ui.row().classes("items-end gap-4 w-full"):
            tag(ui.select(self.choices, value=self.endpoint.id, label="Endpoint",
                          on_change=lambda e: self._pick(e.value)).classes("min-w-72 bf-control"),
                "trend-endpoint")
            tag(ui.toggle(list(RANGES), value="1 h", on_change=lambda e: self._range(e.value))
                .props("size=lg").classes("bf-control"), "trend-range")
            tag(ui.button("EXPORT CSV", on_click=self.export).classes("bf-btn bf-control"), "trend-export")
        self.summary = tag(ui.label("").classes("bf-detail"), "trend-summary")
        self.chart = tag(ui.echart(self._options()).classes("w-full").style("height: 60vh"), "trend-chart")
        ui.timer(CARRY_EVERY_S, self.carry_forward)
        live.watch({self.endpoint.id})

    def _options(self) -> dict[str, Any]:
        unit = self.endpoint.unit
        line = {"type": "line", "showSymbol": False, "connectNulls": False}
        return {
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"data": ["max", "avg", "min"], "top": 0, "right": 20},
            "grid": {"left": 60, "right": 20, "top": 40, "bottom": 30},
            "xAxis": {"type": "time"},
            "yAxis": {"type": "value", "name": unit, "scale": True},
            "series": [
                {**line, "name": "max", "data": [], "lineStyle": {"color": "#8a8a8a", "type": "dashed", "width": 1},
                 "itemStyle": {"color": "#8a8a8a"}},
                {**line, "name": "avg", "data": [], "lineStyle": {"color": "#303030", "width": 2},
                 "itemStyle": {"color": "#303030"}},
                {**line, "name": "min", "data": [], "lineStyle": {"color": "#8a8a8a", "type": "dotted", "width": 1},
                 "itemStyle": {"color": "#8a8a8a"}},
            ],
        }

    async def _pick(self, endpoint_id: int) -> None:
        self.endpoint = self.runtime.plant.endpoints[endpoint_id]
        self.live.watch({endpoint_id})
        await self.load()

    async def _range(self, name: str) -> None:
        self.span = RANGES[name]
        await self.load()

    def window(self) -> tuple[datetime, datetime]:
        until = utcnow()
        return until - self.span, until

    async def load(self) -> None:
        """Query the shown range, bucketed by the database, and redraw."""
        since, until = self.window()
        buckets = await self.runtime.history_reader.trend(self.endpoint.id, since, until, BUCKETS)
        self.width = queries.bucket_width(since, until, BUCKETS)
        self.buckets = [[_ms(b.start), b.minimum, b.average, b.maximum, b.samples] for b in buckets]
        self.chart.options.update(self._options())
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_EVERY_S:
            self._dirty = True
            return
        self._last_draw = now
        self._dirty = False
        series = self.chart.options["series"]
        for index, column in ((0, 3), (1, 2), (2, 1)):
            series[index]["data"] = [[b[0], None if b[column] is None else round(b[column], 3)]
                                     for b in self.buckets]
        samples = sum(b[4] for b in self.buckets)
        self.summary.text = (f"{self.endpoint.display_name}: {samples} good samples in {len(self.buckets)} "
                             f"buckets of {self.width:g} s")
        self.chart.update()

    def resync(self) -> None:
        if not self.buckets:
            return  # the first load is awaited by the page
        self._fold_latest()

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        frame = frames.get(self.endpoint.id)
        if frame is not None:
            self._fold_latest(messages.state_of(frame))
        elif self._dirty:
            self._draw()

    def _fold_latest(self, state: EndpointState | None = None) -> None:
        """Fold a pushed sample (or, on a redraw, the present one) into the newest bucket (or start one)."""
        if state is None:
            state = self.runtime.plant.states[self.endpoint.id]
        if state.quality is not Quality.GOOD or state.value is None or state.server_time is None:
            return
        self._fold(float(state.value), _ms(state.server_time), counted=True)

    def carry_forward(self) -> None:
        """Extend the line to now with the present value while it is live (every second).

        Telemetry is pushed by exception: a steady value sends no frame for up to
        `telemetry_refresh_s`, yet it was sampled all along (history has every sample). A value
        that is not GOOD is not carried, so a stale or bad stretch stays a gap, as it is in history.
        """
        state = self.runtime.plant.states[self.endpoint.id]
        if not self.buckets or state.quality is not Quality.GOOD or state.value is None:
            return
        self._fold(float(state.value), _ms(utcnow()), counted=False)

    def _fold(self, value: float, at: int, counted: bool) -> None:
        """Put `value` at time `at` (ms) into its bucket; drop what left the range; redraw.

        A carried value widens the bucket's min/max but is not a sample: it neither moves the
        average of sampled values nor the sample count.
        """
        width_ms = int(self.width * 1000)
        if self.buckets and at < self.buckets[-1][0] + width_ms:
            b = self.buckets[-1]
            if at < b[0]:
                return
            n = b[4]
            b[1] = value if b[1] is None else min(b[1], value)
            b[3] = value if b[3] is None else max(b[3], value)
            if counted:
                b[2] = value if b[2] is None or n == 0 else (b[2] * n + value) / (n + 1)
                b[4] = n + 1
            elif b[2] is None:
                b[2] = value
        else:
            start = self.buckets[-1][0] + width_ms if self.buckets else at
            while self.buckets and at >= start + width_ms:
                self.buckets.append([start, None, None, None, 0])
                start += width_ms
            self.buckets.append([start, value, value, value, 1 if counted else 0])
            horizon = at - int(self.span.total_seconds() * 1000)
            while self.buckets and self.buckets[0][0] + width_ms < horizon:
                self.buckets.pop(0)
        self._draw()

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        pass

    async def export(self) -> None:
        """Download the raw samples of the shown range as CSV."""
        since, until = self.window()
        endpoint = self.endpoint
        text = await self.runtime.history_reader.export_csv(endpoint.id, endpoint.name, endpoint.unit, since, until)
        stamp = until.strftime("%Y%m%dT%H%M%SZ")
        ui.download.content(text.encode(), f"{endpoint.name}_{stamp}.csv", "text/csv")
