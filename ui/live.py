"""Live updates for one browser: a bus subscription per connected client, applied at ≤ 5 Hz.

Each page registers `Sink`s (tiles, the alarm banner, a trend). A page that shows controllers
(the Control Panel's faceplates) names them with `watch_controllers` and gets their `controller`
frames, newest per controller per batch, through its sink's `controllers` method. When the client's socket connects
the view subscribes to the core's event bus and redraws all sinks from the plant's present state;
when it disconnects the subscription ends (nothing is queued for a screen that is not there). A
reconnect is a fresh subscription plus a full redraw, so a screen that was away never shows what
it missed as current. A loop then takes whatever the bus queued (telemetry already coalesced per endpoint),
hands it to the sinks (telemetry as the frames themselves: a sink shows the value it was pushed,
never a re-read of the plant, which may already hold a newer value than the frame; `program` frames, newest per
unit, to every sink with a `programs` method), and sleeps
`period`: no tile changes more than 1/period times a second, and the sinks update elements
explicitly (no bindings, no polling). A subscriber the bus cut off as too slow is replaced and
followed by a full resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nicegui import background_tasks, ui
from nicegui.client import Client

from bevforge.bus import (
    ALARM,
    COMMAND_STATUS,
    CONFIG,
    CONTROLLER,
    PROGRAM,
    TELEMETRY,
    Event,
    Subscriber,
    SubscriberClosed,
)
from bevforge.runtime import Runtime

log = logging.getLogger(__name__)

MAX_RATE_HZ = 5.0


class Sink(Protocol):
    def resync(self) -> None: ...
    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        """The newest pushed telemetry frame of each endpoint that changed: show these values."""
    def command(self, payload: dict[str, Any]) -> None: ...
    def alarms(self, payloads: list[dict[str, Any]]) -> None: ...


class ControllerSink(Protocol):
    """A sink that also shows controllers (the Control Panel's faceplates)."""

    def controllers(self, frames: dict[str, dict[str, Any]]) -> None:
        """The newest pushed `controller` frame of each controller that changed."""


class ProgramSink(Protocol):
    """A sink that also shows programs (the Programs screen, the prompt dialog on every page, the panel's
    tiles): every page gets the `program` frames, since a prompt must reach every screen."""

    def programs(self, frames: dict[str, dict[str, Any]]) -> None:
        """The newest pushed `program` frame of each unit that changed (not yet filtered by node)."""


FRESH_JS = "window.bevforgeFresh && window.bevforgeFresh()"  # ui/connection.py: the values are the present ones


class LiveView:
    """Connects one client's sinks to the bus."""

    def __init__(self, runtime: Runtime, client: Client, endpoint_ids: Iterable[int] | None = None,
                 period: float = 1.0 / MAX_RATE_HZ) -> None:
        self.runtime = runtime
        self.client = client
        self.endpoint_ids: set[int] | None = set(endpoint_ids) if endpoint_ids is not None else None
        self.controller_ids: set[str] = set()  # a page wants no controller frames unless it says so
        self.period = period
        self.sinks: list[Sink] = []
        self.subscriber: Subscriber | None = None
        self.task: asyncio.Task[None] | None = None
        self.updates_applied = 0
        # where this page redraws itself when a live config reload changed the plant (layout.frame sets it)
        self.redraw_path: str | None = None
        client.on_connect(self._connected)
        client.on_disconnect(self.stop)
        client.on_delete(self.stop)

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def watch(self, endpoint_ids: Iterable[int] | None) -> None:
        """Change which endpoints' telemetry this page wants (the trend page switches endpoint)."""
        self.endpoint_ids = set(endpoint_ids) if endpoint_ids is not None else None

    def watch_controllers(self, controller_ids: Iterable[str]) -> None:
        """Which controllers' frames this page shows (ids the controller service listed for its user)."""
        self.controller_ids = set(controller_ids)

    def _wants(self, event: Event) -> bool:
        if event.type in (ALARM, CONFIG, PROGRAM):
            return True
        if event.type == CONTROLLER:
            return event.payload.get("id") in self.controller_ids
        ids = self.endpoint_ids
        return ids is None or event.payload.get("endpointId") in ids

    def _connected(self) -> None:
        if self.client.is_deleted:
            return
        if self.subscriber is None:
            self._subscribe()
        if self.task is None or self.task.done():
            self.task = background_tasks.create(self._run(), name=f"live view {self.client.id}")
        self.resync()
        # the values on screen are the present ones again: the connection script may show them as live
        self.client.run_javascript(FRESH_JS)

    def _subscribe(self) -> None:
        self.subscriber = self.runtime.bus.subscribe(self._wants, name=f"ui:{self.client.id[:8]}")

    def resync(self) -> None:
        """Redraw every sink from the present state."""
        with self.client:
            for sink in self.sinks:
                _safely(sink.resync)

    def redraw(self) -> None:
        """A live config reload changed the plant: this page is drawn again from the new config.

        Tiles, faceplates and their endpoint lists are built when a page is drawn, so the page is
        opened again in place (NiceGUI navigation to the same path, the signed-in session kept)
        rather than patched sink by sink; the operator never has to reload the browser.
        """
        self.stop()
        if self.redraw_path is not None and not self.client.is_deleted:
            with self.client:
                ui.navigate.to(self.redraw_path)

    def stop(self) -> None:
        if self.subscriber is not None:
            self.subscriber.close("client gone")
            self.subscriber = None
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        while not self.client.is_deleted:
            sub = self.subscriber
            if sub is None:
                return
            try:
                events = await sub.get_many()
            except SubscriberClosed as exc:
                if self.subscriber is not sub:
                    return
                log.warning("screen %s fell behind (%s): resynchronising", self.client.id[:8], exc.reason)
                self._subscribe()
                self.resync()
                continue
            self.apply(events)
            await asyncio.sleep(self.period)

    def apply(self, events: list[Event]) -> None:
        changed: dict[int, dict[str, Any]] = {}  # endpoint → its newest frame in this batch
        commands: list[dict[str, Any]] = []
        alarms: list[dict[str, Any]] = []
        controllers: dict[str, dict[str, Any]] = {}  # controller → its newest frame in this batch
        programs: dict[str, dict[str, Any]] = {}  # unit → its newest frame in this batch
        if any(event.type == CONFIG for event in events):
            self.redraw()
            return
        for event in events:
            if event.type == TELEMETRY:
                changed[event.payload["endpointId"]] = event.payload
            elif event.type == COMMAND_STATUS:
                commands.append(event.payload)
            elif event.type == ALARM:
                alarms.append(event.payload)
            elif event.type == CONTROLLER:
                controllers[event.payload["id"]] = event.payload
            elif event.type == PROGRAM:
                programs[event.payload["unit"]] = event.payload
        self.updates_applied += len(events)
        with self.client:
            for sink in self.sinks:
                if changed:
                    _safely(sink.telemetry, changed)
                for payload in commands:
                    _safely(sink.command, payload)
                if alarms:
                    _safely(sink.alarms, alarms)
                show = getattr(sink, "controllers", None)
                if controllers and show is not None:
                    _safely(show, controllers)
                show_programs = getattr(sink, "programs", None)
                if programs and show_programs is not None:
                    _safely(show_programs, programs)


def _safely(fn: Callable[..., Any], *args: Any) -> None:
    """One broken sink must not stop the others or the loop (it is logged, the screen keeps going)."""
    try:
        fn(*args)
    except Exception:
        log.exception("screen update failed in %s", getattr(fn, "__qualname__", fn))
