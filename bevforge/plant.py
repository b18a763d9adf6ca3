"""The plant: current state of every endpoint and the one place that state changes.

`ingest()` is the telemetry data flow in one function: update current state, queue history, run
alarms and continuous interlocks, publish to the bus. It is synchronous and never awaits, so a
reading reaches every view in the same turn of the event loop that received it.

Publishing is report-by-exception: a sample goes to the bus when its value, quality or error
differs from the last one published for that endpoint, or when `realtime.telemetry_refresh_s` has
passed since (so a steady value still shows a recent timestamp). An idle brewhouse polled every
0.5 s otherwise sends every screen ~40 identical frames a second, and those bursts, multiplied by
a hundred clients, are what delays the one frame that matters. History and alarms still see every
sample; a value that stops arriving is published as it turns stale (quality changes).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from bevforge import interlocks, messages
from bevforge.bus import TELEMETRY, EventBus
from bevforge.domain import (
    EndpointState,
    InterlockVerdict,
    Quality,
    Reading,
    Severity,
    Value,
    utcnow,
)
from bevforge.tasks import repeat_every, stop_task

if TYPE_CHECKING:
    from bevforge.alarms import AlarmService
    from bevforge.config import Endpoint, PlantConfig
    from bevforge.store.writer import HistoryWriter

log = logging.getLogger(__name__)

TripHandler = Callable[[InterlockVerdict], None]


class Plant:
    def __init__(self, config: PlantConfig, bus: EventBus, history: HistoryWriter, alarms: AlarmService) -> None:
        self.config = config
        self.endpoints: dict[int, Endpoint] = config.endpoints_by_id
        self.bus = bus
        self.history = history
        self.alarms = alarms
        self.states: dict[int, EndpointState] = {eid: EndpointState(eid) for eid in self.endpoints}
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._rules_by_input: dict[int, list[int]] = self._index_interlocks(config)
        self._forwarded = self._history_forwarded(config)
        self.trip_handler: TripHandler | None = None
        self.device_online: dict[str, bool] = {d.id: False for d in config.devices}
        self.readings_ingested = 0
        self.refresh_s = config.realtime.telemetry_refresh_s
        self._last_published: dict[int, tuple[Value | None, Quality, str | None, float]] = {}
        self.samples_unpublished = 0  # samples that repeated the last published frame
        self.clock: Callable[[], float] = time.monotonic  # replaceable, so tests can age a frame
        self._stale_task: asyncio.Task[None] | None = None

    @staticmethod
    def _history_forwarded(config: PlantConfig) -> frozenset[int]:
        """Endpoints whose history the site forwards (Device.history): their live readings are not stored,
        or the centre's history would hold every sample twice."""
        devices = {d.id for d in config.devices if d.history == "forwarded"}
        return frozenset(e.id for e in config.endpoints if e.device in devices)

    def _index_interlocks(self, config: PlantConfig) -> dict[int, list[int]]:
        """Which interlock rules each endpoint's reading can break (so ingest checks only those)."""
        by_input: dict[int, list[int]] = {}
        for index, rule in enumerate(config.interlocks):
            watched = {c.endpoint for c in rule.requires} | {config.endpoints_by_id[rule.target].feedback_id}
            for eid in watched:
                by_input.setdefault(eid, []).append(index)
        return by_input

    def reconfigure(self, config: PlantConfig, changed_endpoints: set[int]) -> None:
        """Take a reloaded config (bevforge/reload.py), in one synchronous step.

        The state of an endpoint the reload did not touch is kept as it is (its value, quality and
        sequence go on); a changed endpoint starts again from no value, because its address, scale or
        type may now mean something else; a removed one is forgotten. `states` and `device_online`
        are changed in place: the alarm engine holds the same mappings.
        """
        self.config = config
        self.endpoints = config.endpoints_by_id
        self._forwarded = self._history_forwarded(config)
        for eid in [e for e in self.states if e not in self.endpoints]:
            del self.states[eid]
            self._last_published.pop(eid, None)
        for eid in self.endpoints:
            if eid not in self.states or eid in changed_endpoints:
                self.states[eid] = EndpointState(eid)
                self._last_published.pop(eid, None)
        device_ids = {d.id for d in config.devices}
        for device_id in [d for d in self.device_online if d not in device_ids]:
            del self.device_online[device_id]
        for device_id in device_ids:
            self.device_online.setdefault(device_id, False)
        self._rules_by_input = self._index_interlocks(config)

    def check_all_interlocks(self) -> None:
        """Run every continuous interlock once against the present state (after a reload changed them)."""
        if self.trip_handler is not None and self.config.interlocks:
            self._check_trips(set(range(len(self.config.interlocks))))

    async def restart_stale_sweep(self) -> None:
        """The sweep's period follows the shortest stale_after: restart it after a reload."""
        if self._stale_task is not None:
            await stop_task(self._stale_task)
            self.start()

    # -- telemetry -------------------------------------------------------------------------

    def ingest(self, readings: Iterable[Reading]) -> int:
        """Apply readings; return how many were applied. Readings must already be validated."""
        now = utcnow()
        now_ts = now.timestamp()
        now_mono = self.clock()
        touched_rules: set[int] = set()
        count = 0
        for reading in readings:
            state = self.states[reading.endpoint_id]
            endpoint = self.endpoints[reading.endpoint_id]
            previous_quality = state.quality
            good = reading.quality is Quality.GOOD and reading.value is not None
            if good:
                state.value = reading.value
                state.error = None
            else:
                state.error = reading.error or "bad reading"
            state.quality = reading.quality if reading.value is not None else Quality.BAD
            state.source_time = reading.source_time
            state.server_time = now
            state.seq += 1
            count += 1
            numeric = _as_number(reading.value) if good else None
            current = {"endpoint_id": endpoint.id, "value": state.value, "quality": state.quality.value,
                       "source_time": state.source_time, "server_time": now}
            if endpoint.id in self._forwarded:
                self.history.set_current(current)
            else:
                self.history.add(
                    {"endpoint_id": endpoint.id, "value": numeric, "quality": state.quality.value,
                     "source_ts": reading.source_time.timestamp() if reading.source_time else None,
                     "server_ts": now_ts},
                    current)
            self._publish_news(endpoint, state, now_mono)
            if good:
                self.alarms.evaluate(state)
            if state.quality is not previous_quality:
                self.alarms.quality_changed(state, endpoint.device)
            touched_rules.update(self._rules_by_input.get(endpoint.id, ()))
            self._wake(endpoint.id)
        self.readings_ingested += count
        if touched_rules and self.trip_handler is not None:
            self._check_trips(touched_rules)
        return count

    def _publish_news(self, endpoint: Endpoint, state: EndpointState, now_mono: float) -> None:
        """Publish a sample unless it repeats the last frame and that frame is still recent."""
        last = self._last_published.get(endpoint.id)
        if (self.refresh_s > 0 and last is not None and now_mono - last[3] < self.refresh_s
                and last[1] is state.quality and last[2] == state.error
                and type(last[0]) is type(state.value) and last[0] == state.value):
            self.samples_unpublished += 1
            return
        self._publish(endpoint, state, now_mono)

    def _publish(self, endpoint: Endpoint, state: EndpointState, now_mono: float | None = None) -> None:
        self._last_published[endpoint.id] = (state.value, state.quality, state.error,
                                             self.clock() if now_mono is None else now_mono)
        payload = messages.telemetry(endpoint, state)
        self.bus.publish(TELEMETRY, payload, key=endpoint.id, node=endpoint.node)

    def _check_trips(self, rule_indexes: set[int]) -> None:
        rules = [self.config.interlocks[i] for i in sorted(rule_indexes)]
        for verdict in interlocks.violated_running(rules, self.endpoints, self.states):
            assert self.trip_handler is not None
            self.trip_handler(verdict)

    # -- waiting for readback --------------------------------------------------------------

    def _wake(self, endpoint_id: int) -> None:
        waiters = self._waiters.pop(endpoint_id, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def next_sample(self, endpoint_id: int, timeout: float) -> bool:
        """Wait for the next reading of `endpoint_id`; False on timeout."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(endpoint_id, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False

    # -- quality ---------------------------------------------------------------------------

    def mark_device(self, device_id: str, online: bool, error: str | None = None) -> None:
        """Comms state of a device: offline makes its values BAD and raises a comms alarm."""
        was = self.device_online.get(device_id)
        self.device_online[device_id] = online
        key = f"comms:{device_id}"
        if online:
            self.alarms.clear(key)
            return
        if was is False and self.alarms.is_active(key):
            return
        bad = []
        for endpoint in self.endpoints.values():
            if endpoint.device == device_id:
                bad.append(Reading(endpoint.id, None, Quality.BAD, error=f"device offline: {error or 'no answer'}"))
        self.ingest(bad)
        device = next(d for d in self.config.devices if d.id == device_id)
        self.alarms.raise_alarm(key, "comms", Severity.HIGH,
                                f"Communication lost with {device.name or device.id}: {error or 'no answer'}",
                                ref=device_id)

    def start(self) -> None:
        self._stale_task = asyncio.create_task(self._stale_sweep(), name="stale-sweep")

    async def stop(self) -> None:
        await stop_task(self._stale_task)

    async def _stale_sweep(self) -> None:
        """A value with no fresh sample for stale_after is UNCERTAIN; for 3× that, BAD."""
        period = max(0.1, min((e.stale_after for e in self.endpoints.values() if e.source != "software"),
                              default=1.0) / 4)
        # a sweep must never die: it is what keeps stale values honest
        await repeat_every(period, lambda: self.sweep_stale(utcnow()), log, "stale sweep")

    def sweep_stale(self, now: datetime) -> None:
        for endpoint in self.endpoints.values():
            state = self.states[endpoint.id]
            if state.server_time is None or state.quality is Quality.BAD or (endpoint.source == "software"
                                                                             and endpoint.writable):
                continue  # a value the panel holds (a software setpoint) never goes stale; a recorded output does
            age = (now - state.server_time).total_seconds()
            if age > 3 * endpoint.stale_after:
                new_quality, error = Quality.BAD, f"no sample for {age:.0f} s"
            elif age > endpoint.stale_after and state.quality is Quality.GOOD:
                new_quality, error = Quality.UNCERTAIN, f"stale: no sample for {age:.1f} s"
            else:
                continue
            state.quality = new_quality
            state.error = error
            state.seq += 1
            self._publish(endpoint, state)
            self.alarms.quality_changed(state, endpoint.device)

    # -- validation used by the ingest API -------------------------------------------------

    def snapshot(self, endpoint_ids: Sequence[int] | None = None) -> list[EndpointState]:
        ids = endpoint_ids if endpoint_ids is not None else list(self.endpoints)
        return [self.states[i] for i in ids if i in self.states]


def _as_number(value: Value | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    number = float(value)
    return number if math.isfinite(number) else None
