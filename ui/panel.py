"""The Control Panel body: the configured tiles and controller faceplates grouped by node, kept live by a LiveView.

It is a `Sink`: the LiveView hands it the telemetry frames pushed, which commands moved and that
alarms changed; a row shows the value of the frame it was pushed (a full redraw, `resync`, reads the
plant's present state) and decides whether anything visible changed.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from bevforge import messages, permissions
from bevforge.alarms import Alarm
from bevforge.domain import Actor
from bevforge.runtime import Runtime
from ui.controls import Commander, tag
from ui.faceplate import TREND_REDRAW_S, Faceplate
from ui.tiles import FINAL, EndpointRow, TileCard

PROCESS_KINDS = ("HI", "HIHI", "LO", "LOLO", "deviation", "rate", "discrete")


class ControlPanel:
    def __init__(self, runtime: Runtime, commander: Commander, actor: Actor) -> None:
        self.runtime = runtime
        self.actor = actor
        self.commander = commander
        commander.on_submitted.append(lambda command: self.command(command.as_dict()))
        self.rows: dict[int, list[EndpointRow]] = {}
        self.faceplates: dict[str, Faceplate] = {}
        nodes = {node.id: node for node in runtime.config.nodes}
        with ui.row().classes("w-full items-start gap-3"):
            for node_id, node in nodes.items():
                if not permissions.may_see_node(actor, node_id):
                    continue  # a node-limited user: other nodes do not exist on this screen
                tiles = [t for t in runtime.config.tiles if t.node == node_id]
                loops = runtime.controllers.views(actor, node_id)  # the service applies the node rule
                if not tiles and not loops:
                    continue
                with tag(ui.column().classes("bf-node gap-2"), f"node-{node_id}"):
                    ui.label(f"{node.id} · {node.name}").classes("bf-node-title")
                    for tile in tiles:
                        card = TileCard(runtime, tile, commander, actor)
                        for row in card.rows:
                            self.rows.setdefault(row.endpoint.id, []).append(row)
                    for view in loops:
                        self.faceplates[view["id"]] = Faceplate(runtime, commander.client, actor, view)
        if self.faceplates:
            # the mini-trends' PV history once the browser is connected (the page is not held up by
            # a query), then at most one redraw a second
            ui.timer(0, self.load_trends, once=True)
            ui.timer(TREND_REDRAW_S, self._draw_trends)

    async def load_trends(self) -> None:
        """The faceplates' PV history for their mini-trends."""
        for faceplate in self.faceplates.values():
            await faceplate.load_trend()

    def _draw_trends(self) -> None:
        for faceplate in self.faceplates.values():
            faceplate.trend.draw()

    @property
    def controller_ids(self) -> set[str]:
        return set(self.faceplates)

    def controllers(self, frames: dict[str, dict[str, Any]]) -> None:
        """Pushed `controller` frames (the newest of each, ≤ 5 a second from the LiveView)."""
        for cid, frame in frames.items():
            faceplate = self.faceplates.get(cid)
            if faceplate is not None:
                faceplate.show_frame(frame)

    @property
    def endpoint_ids(self) -> set[int]:
        return set(self.rows) | {f.input.id for f in self.faceplates.values()}

    def resync(self) -> None:
        states = self.runtime.plant.states
        if self.faceplates:
            views = {view["id"]: view for view in self.runtime.controllers.views(self.actor)}
            for cid, faceplate in self.faceplates.items():
                faceplate.show_input(states[faceplate.input.id])
                if cid in views:
                    faceplate.show_frame(views[cid])
        for eid, rows in self.rows.items():
            in_flight = self.runtime.commands.in_flight(eid)
            for row in rows:
                row.show_state(states[eid])
                if in_flight is not None:
                    row.show_command(in_flight.as_dict())
                elif row.current_command is not None:
                    row.clear_pending()
        self._alarm_tags()

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        for eid, frame in frames.items():
            rows = self.rows.get(eid, ())
            if rows:
                state = messages.state_of(frame)  # the value pushed, in the frame's own order
                for row in rows:
                    row.show_state(state)
        for faceplate in self.faceplates.values():
            frame = frames.get(faceplate.input.id)
            if frame is not None:
                faceplate.show_input(messages.state_of(frame))

    def command(self, payload: dict[str, Any]) -> None:
        for row in self.rows.get(payload["endpointId"], ()):
            row.show_command(payload)
        if payload["status"] in FINAL:
            self.commander.finished(payload)

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        self._alarm_tags()

    def _alarm_tags(self) -> None:
        worst = worst_alarms(self.runtime, self.actor)
        trips: dict[int, Alarm] = {}
        for alarm in self.runtime.alarms.standing(self.actor):
            if alarm.kind == "interlock_trip" and alarm.endpoint_id is not None and alarm.point.annunciated:
                held = trips.get(alarm.endpoint_id)  # until acknowledged, cleared or not: the reason stays
                if held is None or _rank(alarm) < _rank(held):
                    trips[alarm.endpoint_id] = alarm
        for eid, rows in self.rows.items():
            for row in rows:
                row.show_alarm(worst.get(eid))
                row.show_trip(trips.get(eid))


def worst_alarms(runtime: Runtime, actor: Actor) -> dict[int, Alarm]:
    """The worst active, annunciated process alarm of each endpoint this user may see (a row's or a
    symbol's alarm tag)."""
    worst: dict[int, Alarm] = {}
    for alarm in runtime.alarms.standing(actor):
        if (not alarm.active or alarm.endpoint_id is None
                or alarm.kind not in PROCESS_KINDS or not alarm.point.annunciated):
            continue
        held = worst.get(alarm.endpoint_id)
        if held is None or _rank(alarm) < _rank(held):
            worst[alarm.endpoint_id] = alarm
    return worst


def _rank(alarm: Alarm) -> int:
    return ("critical", "high", "medium", "low", "alert").index(alarm.severity.value)
