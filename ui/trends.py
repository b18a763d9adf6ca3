"""The /trends page: several pens on one chart, an axis per unit, markers, zoom and pan, live tail, CSV.

What it shows and why (docs/operator.md "Trends"):
- **Pens.** Each pen is one endpoint's history as the average of its good samples per bucket; the
  database buckets the range (bevforge/store/queries.py), so a 24 h trend draws from ≤ 600 rows per
  pen. Pens of one unit share a y-axis (°C left, % right, L …), so a loop's PV, SP and output read
  together. The pens come from a view (bevforge/trends.py: a vessel's default, a shared one or the
  user's own) and can be added and removed; the current set can be saved as a view.
- **Markers.** Commands to the pens (who, what, result) and the alarm journal's transitions of alarms
  about them, as vertical mark lines with a tooltip; reloaded when a command or alarm frame arrives.
- **Zoom and pan.** ECharts dataZoom (drag or pinch inside the chart, or the slider below it). While
  the view ends at "now" the chart follows: new samples are appended from the page's LiveView and
  the chart is updated explicitly at most once a second. Zooming into the past stops the following
  (the chart holds still so the operator can read it); LIVE goes back to the whole range, following.
- **Gaps.** Only GOOD values are drawn; a bucket without a good sample, and a stale or bad stretch
  while following, stay gaps, never a line drawn through.
- **CSV.** The raw samples (every quality) of the pens on screen over the range on screen (the zoomed
  part, if zoomed), long format: one row per sample per pen with the raw id, name, label and unit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import events, ui

from bevforge import messages, permissions
from bevforge.config import Endpoint, EndpointKind
from bevforge.domain import Actor, EndpointState, Quality, utcnow
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from bevforge.store import queries
from bevforge.trends import MAX_PENS, Marker, TrendLayout
from ui.controls import tag
from ui.errors import notify_error
from ui.live import LiveView

log = logging.getLogger(__name__)

RANGES = {"15 min": timedelta(minutes=15), "1 h": timedelta(hours=1), "8 h": timedelta(hours=8),
          "24 h": timedelta(hours=24)}
CUSTOM = "Custom"
BUCKETS = 600
REDRAW_EVERY_S = 1.0  # the live tail updates the chart at most once a second
CARRY_EVERY_S = 1.0  # a steady live value extends the line this often (buckets are ≥ 2 s wide)
FOLLOW_END_PCT = 99.9  # a zoom window ending this close to the right edge (a slider pulled to it) follows "now"
PALETTE = ["#1f4e79", "#b03a2e", "#2e7d32", "#7b3f99", "#b7791f", "#00838f", "#5d4037", "#455a64"]
MARKER_COLOURS = {"command": "#1f4e79", "alarm": "#b03a2e"}
AXIS_STEP_PX = 60


def _ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _unit(endpoint: Endpoint) -> str:
    return endpoint.unit or "value"


def hold_s(endpoint: Endpoint) -> float | None:
    """How long a sample of this endpoint stays in force without a new one; None: not at all.

    A device's endpoint is sampled at every poll, so an empty bucket means no good sample: a gap.
    A software-held endpoint (a controller's setpoint, its output record) is recorded when it changes
    (the output record also every 10 s): its value holds until the next sample, for as long as the
    plant would keep it live — a software setpoint for ever, a recorded output for its stale time
    (bevforge/plant.py `sweep_stale`).
    """
    if endpoint.source != "software":
        return None
    return math.inf if endpoint.writable else endpoint.stale_after


def held_buckets(buckets: list[list[Any]], hold: float | None, seed: tuple[int, float] | None = None,
                 lasts: dict[int, float] | None = None) -> list[list[Any]]:
    """Buckets [start_ms, min, avg, max, n] with empty ones after a good one filled by its value while it
    holds (`hold_s`), starting from `seed` (time ms, value: the last sample before the range).

    The value held is the bucket's last sample (`lasts`: bucket index → value), not its average: a
    setpoint changed from 65 to 64 within one bucket holds 64 afterwards. A filled bucket has n = 0
    (it adds no sample); an empty bucket past the hold stays a gap.
    """
    if hold is None:
        return buckets
    lasts = lasts or {}
    last = seed
    out = []
    for index, (start, low, average, high, n) in enumerate(buckets):
        if average is not None:
            last = (start, lasts.get(index, average))
        elif last is not None and start - last[0] <= hold * 1000:
            low = average = high = last[1]
        out.append([start, low, average, high, n])
    return out


class TrendView:
    """Pens, views, range, markers and export on one chart. A `Sink` for the page's LiveView."""

    def __init__(self, runtime: Runtime, live: LiveView, actor: Actor, endpoint_id: int | None = None,
                 view_key: str | None = None, pen_ids: list[int] | None = None) -> None:
        self.runtime = runtime
        self.live = live
        self.actor = actor
        mine = permissions.visible_endpoints(actor, runtime.config.endpoints)  # a node-limited user: theirs only
        if not mine:
            raise ValueError(f"user {actor.user} may see no endpoint")
        self.choices = {e.id: f"{e.display_name} ({e.node})" for e in mine}
        self.views: dict[str, TrendLayout] = {}
        self.view_key: str | None = view_key
        self.pens: list[Endpoint] = []
        asked = [i for i in dict.fromkeys([*([endpoint_id] if endpoint_id is not None else []), *(pen_ids or [])])
                 if i in self.choices][:MAX_PENS]  # an id this user may not see is passed over, as in the pickers
        if asked:
            self.pens = [runtime.plant.endpoints[i] for i in asked]
            self.view_key = None
        self._address: dict[str, str] | None = None  # the query the browser's address bar last got from us
        self.span = RANGES["1 h"]
        self.custom: tuple[datetime, datetime] | None = None  # a fixed range in the past: no live tail
        self.following = True
        self.zoom = (0.0, 100.0)  # the dataZoom window, % of the shown range
        self.width = 1.0
        self.buckets: dict[int, list[list[Any]]] = {}  # endpoint → [start_ms, min, avg, max, n]
        self.markers: list[Marker] = []
        self._markers_stale = False
        self._last_draw = 0.0
        self._dirty = False
        self._series_count = 0
        with ui.row().classes("items-end gap-4 w-full"):
            self.view_select = tag(ui.select({}, label="View", on_change=lambda e: self._pick_view(e.value))
                                   .classes("min-w-60 bf-control"), "trend-view")
            self.add_select = tag(ui.select(self.choices, label="Add pen", on_change=lambda e: self._add_pen(e.value))
                                  .classes("min-w-72 bf-control"), "trend-add-pen")
            self.range_toggle = tag(ui.toggle([*RANGES, CUSTOM], value="1 h",
                                              on_change=lambda e: self._range(e.value))
                                    .props("size=lg").classes("bf-control"), "trend-range")
        with ui.row().classes("items-center gap-2 w-full"):
            self.pen_row = tag(ui.row().classes("items-center gap-2"), "trend-pens")
            ui.space()
            self.live_button = tag(ui.button("LIVE", on_click=self.go_live).classes("bf-btn bf-control"),
                                   "trend-live")
            tag(ui.button("SAVE VIEW", on_click=self.save_dialog).classes("bf-btn bf-control"), "trend-save")
            self.delete_button = tag(ui.button("DELETE VIEW", on_click=self.delete_view)
                                     .classes("bf-btn bf-control"), "trend-delete")
            tag(ui.button("EXPORT CSV", on_click=self.export).classes("bf-btn bf-control"), "trend-export")
        self.summary = tag(ui.label("").classes("bf-detail"), "trend-summary")
        self.chart = tag(ui.echart(self._options()).classes("w-full").style("height: 60vh"), "trend-chart")
        # the window as ECharts holds it after any zoom (a pinch, the slider, a startValue/endValue action)
        self.chart.on("chart:datazoom", self._zoomed, js_handler=(
            f"() => {{ const z = getElement({self.chart.id}).chart.getOption().dataZoom[0]; "
            "emit({start: z.start, end: z.end}); }"))
        ui.timer(CARRY_EVERY_S, self.tick)

    # -- the chart's options ---------------------------------------------------------------------

    @property
    def units(self) -> list[str]:
        return list(dict.fromkeys(_unit(e) for e in self.pens))

    def _options(self) -> dict[str, Any]:
        units = self.units or ["value"]
        left = (len(units) + 1) // 2
        right = len(units) // 2
        axes = []
        for index, unit in enumerate(units):
            first = next((i for i, e in enumerate(self.pens) if _unit(e) == unit), 0)
            axes.append({"type": "value", "name": unit, "scale": True, "boundaryGap": ["5%", "5%"],  # off the frame
                         "position": "left" if index % 2 == 0 else "right",
                         "offset": (index // 2) * AXIS_STEP_PX, "alignTicks": index > 0,
                         "axisLine": {"show": True, "lineStyle": {"color": PALETTE[first % len(PALETTE)]}},
                         "splitLine": {"show": index == 0}})
        series: list[dict[str, Any]] = []
        for index, endpoint in enumerate(self.pens):
            colour = PALETTE[index % len(PALETTE)]
            setpoint = endpoint.kind is EndpointKind.SETPOINT
            series.append({"id": f"pen-{endpoint.id}", "name": f"{endpoint.display_name} ({_unit(endpoint)})",
                           "type": "line", "showSymbol": False, "connectNulls": False,
                           "step": "end" if setpoint else False,
                           "yAxisIndex": units.index(_unit(endpoint)), "data": [], "color": colour,
                           "lineStyle": {"width": 2, "type": "dashed" if setpoint else "solid"}})
        for kind, name in (("command", "Commands"), ("alarm", "Alarms")):
            series.append({"id": f"markers-{kind}", "name": name, "type": "line", "data": [], "yAxisIndex": 0,
                           "color": MARKER_COLOURS[kind],
                           "markLine": {"symbol": ["none", "none"], "silent": False, "animation": False,
                                        "tooltip": {"trigger": "item", "formatter": "{b}"},
                                        "lineStyle": {"color": MARKER_COLOURS[kind],
                                                      "type": "solid" if kind == "command" else "dotted"},
                                        "label": {"show": True, "position": "insideEndTop", "fontSize": 11},
                                        "data": []}})
        return {
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0, "left": "center", "type": "scroll"},
            "grid": {"left": 50 + AXIS_STEP_PX * max(0, left - 1) + 20, "right": 30 + AXIS_STEP_PX * right,
                     "top": 50, "bottom": 70},
            "xAxis": {"type": "time"},
            "yAxis": axes,
            "dataZoom": [{"type": "inside", "xAxisIndex": 0, "filterMode": "none"},
                         {"type": "slider", "xAxisIndex": 0, "filterMode": "none", "height": 28, "bottom": 10}],
            "series": series,
        }

    # -- views and pens ----------------------------------------------------------------------------

    def _view_label(self, layout: TrendLayout) -> str:
        return {"vessel": "Vessel", "shared": "Shared", "mine": "Mine"}[layout.scope] + f": {layout.name}"

    async def load_views(self) -> None:
        """The views this user may pick: vessel views, shared, their own."""
        self.views = {v.key: v for v in await self.runtime.trends.views(self.actor)}
        self.view_select.set_options({k: self._view_label(v) for k, v in self.views.items()})
        if self.view_key not in self.views:
            self.view_key = None
        if not self.pens:
            key = self.view_key or next(iter(self.views), None)
            if key is not None:
                self._apply_view(self.views[key])
            else:
                self.pens = [self.runtime.plant.endpoints[next(iter(self.choices))]]
        self.view_select.set_value(self.view_key)
        self._show_pens()

    def _apply_view(self, layout: TrendLayout) -> None:
        self.view_key = layout.key
        self.pens = [self.runtime.plant.endpoints[eid] for eid in layout.pens if eid in self.choices]
        if layout.scope != "vessel":
            name = next((n for n, span in RANGES.items() if span.total_seconds() == layout.span_s), None)
            self.custom = None
            self.span = timedelta(seconds=layout.span_s)
            self.range_toggle.set_value(name)  # a span no preset has: no preset lit, still that span

    async def _pick_view(self, key: str | None) -> None:
        if key is None or (key == self.view_key and self.pens):
            return
        layout = self.views.get(key)
        if layout is None:
            return
        self._apply_view(layout)
        self._show_pens()
        if self.custom is None:
            await self.go_live()  # a view is read from now back: whole range, following
        else:
            await self.load()  # the same past range, another set of pens

    async def _add_pen(self, endpoint_id: int | None) -> None:
        if endpoint_id is None:
            return
        self.add_select.set_value(None)
        if any(e.id == endpoint_id for e in self.pens):
            return
        if len(self.pens) >= MAX_PENS:
            ui.notify(f"A trend holds at most {MAX_PENS} pens", type="warning")
            return
        self.pens.append(self.runtime.plant.endpoints[endpoint_id])
        self._show_pens()
        await self.load()

    async def _remove_pen(self, endpoint_id: int) -> None:
        if len(self.pens) <= 1:
            ui.notify("A trend needs at least one pen", type="warning")
            return
        self.pens = [e for e in self.pens if e.id != endpoint_id]
        self._show_pens()
        await self.load()

    def _show_pens(self) -> None:
        """The pen list under the pickers: label, unit and a remove button each."""
        self.pen_row.clear()
        with self.pen_row:
            for index, endpoint in enumerate(self.pens):
                colour = PALETTE[index % len(PALETTE)]
                tag(ui.button(f"{endpoint.display_name} ({_unit(endpoint)}) ✕",
                              on_click=lambda _e, eid=endpoint.id: self._remove_pen(eid))
                    .props(f'outline no-caps color="{colour}"').classes("bf-control"), f"trend-pen-{endpoint.id}")
        self.live.watch({e.id for e in self.pens})
        self._remember_in_address()
        saved = self.view_key is not None and self.views.get(self.view_key, None) is not None \
            and self.views[self.view_key].scope != "vessel"
        self.delete_button.set_visibility(saved)

    def address_query(self) -> dict[str, str]:
        """What the address bar says this trend shows: `view=KEY` while a view's pens are shown as it has
        them, else `endpoint=ID` (one pen) or `pens=ID,ID…` — what the page route reads back."""
        layout = self.views.get(self.view_key or "")
        ids = [e.id for e in self.pens]
        if layout is not None and ids == [i for i in layout.pens if i in self.choices]:
            return {"view": layout.key}
        if len(ids) == 1:
            return {"endpoint": str(ids[0])}
        return {"pens": ",".join(str(i) for i in ids)}

    def _remember_in_address(self) -> None:
        """Keep the browser's address in step with the pens (history.replaceState, no new history entry),
        so a reload (F5) or a bookmark opens this trend again rather than the default view. Other
        parameters (`kiosk`) stay as they are."""
        query = self.address_query()
        if query == self._address:
            return
        self._address = query
        ui.run_javascript(
            "const u = new URL(window.location.href);"
            "for (const k of ['view', 'endpoint', 'pens']) u.searchParams.delete(k);"
            f"for (const [k, v] of Object.entries({json.dumps(query)})) u.searchParams.set(k, v);"
            "if (u.href !== window.location.href) window.history.replaceState(window.history.state, '', u.href);")

    # -- range, zoom, live -------------------------------------------------------------------------

    async def _range(self, name: str | None) -> None:
        if name is None:
            return
        if name == CUSTOM:
            if self.custom is None:
                await self.custom_dialog()
            return
        if RANGES[name] == self.span and self.custom is None and self.following and self.zoom == (0.0, 100.0):
            return  # set by the page itself (a view picked, LIVE pressed): that already reloads
        self.span = RANGES[name]
        self.custom = None
        await self.go_live()

    async def custom_dialog(self) -> None:
        """A fixed range in the past: a day and a from–to time (UTC), picked by touch (no keyboard)."""
        start, end = self.window()
        with ui.dialog() as dialog, ui.card():
            ui.label("Custom range (UTC)").classes("text-lg")
            day = tag(ui.date(value=end.strftime("%Y-%m-%d")), "trend-custom-day")
            with ui.row():
                begin = tag(ui.time(value=start.strftime("%H:%M")), "trend-custom-from")
                finish = tag(ui.time(value=end.strftime("%H:%M")), "trend-custom-to")
            with ui.row():
                ui.button("CANCEL", on_click=lambda: dialog.submit(None)).classes("bf-btn")
                tag(ui.button("SHOW", on_click=lambda: dialog.submit(True)).classes("bf-btn"), "trend-custom-show")
        answer = await dialog
        dialog.delete()
        if not answer:  # the range stays as it was, and so does its button
            self.range_toggle.set_value(next((n for n, span in RANGES.items() if span == self.span), None))
            return
        since = datetime.fromisoformat(f"{day.value}T{begin.value}").replace(tzinfo=UTC)
        until = datetime.fromisoformat(f"{day.value}T{finish.value}").replace(tzinfo=UTC)
        if until <= since:
            until += timedelta(days=1)  # 22:00 → 02:00 runs over midnight
        self.set_custom(since, until)
        await self.load()

    def set_custom(self, since: datetime, until: datetime) -> None:
        """Show a fixed range: no live tail until LIVE (or a preset) is pressed."""
        self.custom = (since, until)
        self.span = until - since
        self.following = False
        self.range_toggle.set_value(CUSTOM)

    def _zoomed(self, e: events.GenericEventArguments) -> None:
        """The user zoomed or panned: keep the window; stop following unless it still ends at "now"."""
        args = e.args if isinstance(e.args, dict) else {}
        part = (args.get("batch") or [args])[0]
        start, end = part.get("start"), part.get("end")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return
        self.zoom = (float(start), float(end))
        following = self.custom is None and end >= FOLLOW_END_PCT
        if following != self.following:
            self.following = following
            self._show_state()
            if following:
                self._draw(force=True)

    async def go_live(self) -> None:
        """Back to the whole range ending now, following new samples."""
        self.custom = None
        self.following = True
        if self.zoom != (0.0, 100.0):
            self.zoom = (0.0, 100.0)
            self.chart.run_chart_method("dispatchAction", {"type": "dataZoom", "start": 0, "end": 100})
        name = next((n for n, span in RANGES.items() if span == self.span), None)
        if self.range_toggle.value != name:
            self.range_toggle.set_value(name)
        await self.load()

    def window(self) -> tuple[datetime, datetime]:
        """The range the chart holds (the zoom aside): fixed when custom, else the span ending now."""
        if self.custom is not None:
            return self.custom
        until = utcnow()
        return until - self.span, until

    def shown_window(self) -> tuple[datetime, datetime]:
        """The range on screen: the chart's range narrowed to the zoom window."""
        since, until = self.window()
        span = until - since
        start, end = self.zoom
        return since + span * (start / 100.0), since + span * (end / 100.0)

    # -- loading and drawing -------------------------------------------------------------------------

    async def load(self) -> None:
        """Query each pen's history, bucketed by the database, and the markers of the range; redraw."""
        since, until = self.window()
        self.width = queries.bucket_width(since, until, BUCKETS)
        buckets = {}
        reader = self.runtime.history_reader
        for endpoint in self.pens:
            rows = await reader.trend(endpoint.id, since, until, BUCKETS)
            hold = hold_s(endpoint)
            seed, lasts = None, {}
            if hold is not None:
                prior = await reader.last_before(endpoint.id, since)
                if prior is not None and prior[2] == Quality.GOOD.value and prior[1] is not None \
                        and (since - prior[0]).total_seconds() <= hold:
                    seed = (_ms(prior[0]), prior[1])
                lasts = await reader.last_per_bucket(endpoint.id, since, until, BUCKETS)
            buckets[endpoint.id] = held_buckets(
                [[_ms(b.start), b.minimum, b.average, b.maximum, b.samples] for b in rows], hold, seed, lasts)
        self.buckets = buckets
        await self.load_markers()
        options = self._options()
        if len(options["series"]) != self._series_count:
            self.zoom = (0.0, 100.0)  # a new set of series redraws the chart whole, zoom included
            self.following = self.custom is None
        self._series_count = len(options["series"])
        self.chart.options.clear()
        self.chart.options.update(options)
        self._draw(force=True)

    async def load_markers(self) -> None:
        since, until = self.window()
        try:
            self.markers = await self.runtime.trends.markers(self.actor, [e.id for e in self.pens], since,
                                                              until + timedelta(seconds=1))
        except BevForgeError as exc:
            notify_error("Markers", exc)
        self._markers_stale = False

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (now - self._last_draw < REDRAW_EVERY_S or not self.following):
            self._dirty = True
            return
        self._last_draw = now
        self._dirty = False
        # by id: between a pen change and the load that follows it the options still hold the old pens
        series = {s["id"]: s for s in self.chart.options.get("series", [])}
        for endpoint in self.pens:
            if f"pen-{endpoint.id}" in series:
                series[f"pen-{endpoint.id}"]["data"] = [[b[0], None if b[2] is None else round(b[2], 3)]
                                                        for b in self.buckets.get(endpoint.id, [])]
        for kind in ("command", "alarm"):
            if f"markers-{kind}" in series:
                series[f"markers-{kind}"]["markLine"]["data"] = [
                    {"xAxis": _ms(m.time), "name": m.text, "label": {"formatter": m.title}}
                    for m in self.markers if m.kind == kind]
        self._show_state()
        self.chart.update()

    def _show_state(self) -> None:
        parts = [f"{e.display_name}: {_count(sum(b[4] for b in self.buckets.get(e.id, [])), 'good sample')}"
                 for e in self.pens]
        counts = {kind: sum(1 for m in self.markers if m.kind == kind) for kind in ("command", "alarm")}
        if self.custom is not None:
            mode = "fixed range"
        elif self.following:
            mode = "following live"
        else:
            mode = "paused (zoomed into the past)"
        self.summary.text = (f"{'; '.join(parts)} · buckets of {self.width:g} s · "
                             f"{_count(counts['command'], 'command')}, {_count(counts['alarm'], 'alarm event')} · "
                             f"{mode}")
        self.live_button.set_visibility(not (self.following and self.custom is None))

    # -- the live tail (a Sink of the page's LiveView) -----------------------------------------------

    def resync(self) -> None:
        if not self.buckets:
            return  # the first load is awaited by the page
        for endpoint in self.pens:
            self._fold_latest(endpoint.id)

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        if self.custom is not None:
            return
        folded = False
        for endpoint in self.pens:
            frame = frames.get(endpoint.id)
            if frame is not None:
                folded = self._fold_latest(endpoint.id, messages.state_of(frame)) or folded
        if folded or self._dirty:
            self._draw()

    def command(self, payload: dict[str, Any]) -> None:
        if any(e.id == payload.get("endpointId") for e in self.pens):
            self._markers_stale = True

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        ids = {e.id for e in self.pens}
        if any(p.get("endpointId") in ids for p in payloads):
            self._markers_stale = True

    async def tick(self) -> None:
        """Every second: carry steady live values forward, and reload the markers when an event came."""
        if self.custom is not None or not self.buckets:
            return
        for endpoint in self.pens:
            state = self.runtime.plant.states[endpoint.id]
            if state.quality is Quality.GOOD and isinstance(state.value, int | float):
                self._fold(endpoint.id, float(state.value), _ms(utcnow()), counted=False)
        if self._markers_stale:
            await self.load_markers()
            self._draw(force=self.following)
        else:
            self._draw()

    def _fold_latest(self, endpoint_id: int, state: EndpointState | None = None) -> bool:
        """Fold a pushed sample (or, on a redraw, the present one) into the pen's newest bucket."""
        if state is None:
            state = self.runtime.plant.states[endpoint_id]
        if state.quality is not Quality.GOOD or not isinstance(state.value, int | float) \
                or state.server_time is None:
            return False  # stale or bad: a gap, never a point
        self._fold(endpoint_id, float(state.value), _ms(state.server_time), counted=True)
        return True

    def _fold(self, endpoint_id: int, value: float, at: int, counted: bool) -> None:
        """Put `value` at time `at` (ms) into its bucket of this pen; drop what left the range.

        A carried value (a steady live value between pushed frames: telemetry is pushed by
        exception) widens the bucket's min/max but is not a sample: it neither moves the average of
        sampled values nor the sample count — unless the bucket has no average yet.
        """
        buckets = self.buckets.setdefault(endpoint_id, [])
        width_ms = int(self.width * 1000)
        if buckets and at < buckets[-1][0] + width_ms:
            b = buckets[-1]
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
            start = buckets[-1][0] + width_ms if buckets else at
            while buckets and at >= start + width_ms:
                buckets.append([start, None, None, None, 0])
                start += width_ms
            buckets.append([start, value, value, value, 1 if counted else 0])
            horizon = at - int(self.span.total_seconds() * 1000)
            while buckets and buckets[0][0] + width_ms < horizon:
                buckets.pop(0)

    # -- saving, deleting, export ----------------------------------------------------------------------

    async def save_dialog(self) -> None:
        """Save the pens and span as a view: the name is offered from the pens (no typing needed on a kiosk)."""
        current = self.views.get(self.view_key or "")
        suggested = current.name if current is not None and current.scope != "vessel" else \
            " + ".join(e.display_name for e in self.pens)[:60]
        may_share = permissions.has_role(self.actor, permissions.OPERATOR)
        with ui.dialog() as dialog, ui.card():
            ui.label("Save this trend view").classes("text-lg")
            name = tag(ui.input("Name", value=suggested).classes("min-w-72"), "trend-save-name")
            shared = tag(ui.checkbox("Shared with everybody", value=False), "trend-save-shared")
            shared.set_visibility(may_share)
            with ui.row():
                ui.button("CANCEL", on_click=lambda: dialog.submit(None)).classes("bf-btn")
                tag(ui.button("SAVE", on_click=lambda: dialog.submit(True)).classes("bf-btn"), "trend-save-confirm")
        answer = await dialog
        dialog.delete()
        if answer:
            await self.save(str(name.value or ""), bool(shared.value))

    async def save(self, name: str, shared: bool = False) -> TrendLayout | None:
        since, until = self.window()
        try:
            layout = await self.runtime.trends.save(self.actor, name, [e.id for e in self.pens],
                                                    (until - since).total_seconds(), shared=shared)
        except BevForgeError as exc:
            notify_error("Save view", exc)
            return None
        self.view_key = layout.key
        await self.load_views()
        ui.notify(f"View saved: {layout.name}", type="positive")
        return layout

    async def delete_view(self) -> None:
        layout = self.views.get(self.view_key or "")
        if layout is None or layout.id is None:
            return
        try:
            await self.runtime.trends.delete(self.actor, layout.id)
        except BevForgeError as exc:
            notify_error("Delete view", exc)
            return
        self.view_key = None
        await self.load_views()
        ui.notify(f"View deleted: {layout.name}")

    async def export(self) -> None:
        """Download the raw samples of the pens and the range on screen as CSV (long format)."""
        since, until = self.shown_window()
        pens = [queries.PenColumn(e.id, e.name, e.display_name, e.unit) for e in self.pens]
        text = await self.runtime.history_reader.export_pens_csv(pens, since, until)
        stamp = until.strftime("%Y%m%dT%H%M%SZ")
        ui.download.content(text.encode(), f"trend_{stamp}.csv", "text/csv")
