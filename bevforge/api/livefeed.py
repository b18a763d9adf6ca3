"""What a live consumer (/ws or SSE) wants from the bus, and the snapshot frames a late joiner gets.

Snapshot frames have exactly the shape of the live frames they stand for (plus `"snapshot": true`),
so a client handles "the present" and "a change" with the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.bus import ALARM, COMMAND_STATUS, CONFIG, CONTROLLER, PROGRAM, TELEMETRY, Event
from bevforge.domain import Actor, CommandStatus

if TYPE_CHECKING:
    from bevforge.commands import Command
    from bevforge.runtime import Runtime

CHANNELS = ("telemetry", "alarms", "commands", "controllers", "programs")
FINAL_STATUSES = frozenset(s.value for s in CommandStatus if s.is_final)


class Interest:
    """One consumer's subscriptions. `wants` is the bus filter: it runs at publish time, so it is cheap.

    Command subscriptions end by themselves once the command's final status has passed: a
    finished command never changes again, and the slot is free for the next one. What the actor
    may see is `permissions`' answer (`node_filter`), the same as REST's and the screens'.
    """

    def __init__(self, actor: Actor | None = None) -> None:
        self.actor = actor  # None: not signed in yet, nothing is visible
        self.visible = permissions.node_filter(actor)
        self.all_telemetry = False
        self.endpoints: set[int] = set()
        self.alarms = False
        self.controllers = False
        self.programs = False
        self.all_commands = False
        self.commands: set[str] = set()  # asked for by id
        self.sent: set[str] = set()  # sent on this connection: followed without counting as a subscription

    @property
    def count(self) -> int:
        """Subscriptions held: one per endpoint id and command id, one per whole channel."""
        return (len(self.endpoints) + int(self.all_telemetry) + int(self.alarms) + int(self.all_commands)
                + len(self.commands) + int(self.controllers) + int(self.programs))

    def signed_in(self, actor: Actor) -> None:
        """The connection authenticated (a `/ws` auth message): see what this actor may see."""
        self.actor = actor
        self.visible = permissions.node_filter(actor)

    def wants(self, event: Event) -> bool:
        if event.type == CONFIG:
            return self._config_reloaded(event)
        if not self.visible(event.node):
            return False
        kind = event.type
        if kind == TELEMETRY:
            return self.all_telemetry or event.payload["endpointId"] in self.endpoints
        if kind == COMMAND_STATUS:
            command_id = event.payload["commandId"]
            followed = command_id in self.commands or command_id in self.sent
            if followed and event.payload["status"] in FINAL_STATUSES:
                self.commands.discard(command_id)
                self.sent.discard(command_id)
            return followed or self.all_commands
        if kind == ALARM:
            return self.alarms
        if kind == CONTROLLER:
            return self.controllers
        if kind == PROGRAM:
            return self.programs
        return False

    def _config_reloaded(self, event: Event) -> bool:
        """A reload removed endpoints: a subscription to one ends here, and this frame is its notice.

        It goes to a consumer that held such a subscription, and to one following all telemetry
        that may see what changed (`event.node`: the nodes of the removed and changed endpoints).
        """
        ended = self.endpoints.intersection(event.payload["removedEndpointIds"])
        if ended:
            self.endpoints.difference_update(ended)
            return True
        return self.all_telemetry and self.actor is not None and self.visible(event.node)


def telemetry_snapshot(runtime: Runtime, endpoint_ids: Iterable[int]) -> list[Event]:
    """The current value of each endpoint as a telemetry frame (coalesces with later live values)."""
    seq = runtime.bus.last_seq
    events = []
    for endpoint_id in endpoint_ids:
        endpoint = runtime.plant.endpoints[endpoint_id]
        frame = messages.snapshot(messages.telemetry(endpoint, runtime.plant.states[endpoint_id]), seq)
        events.append(Event(seq, TELEMETRY, frame, endpoint_id, endpoint.node))
    return events


def alarm_snapshot(runtime: Runtime, interest: Interest) -> list[Event]:
    """Every standing alarm (active or not yet acknowledged), oldest first, with `event: standing`."""
    seq = runtime.bus.last_seq
    out = []
    for alarm in sorted(runtime.alarms.standing(interest.actor) if interest.actor else [], key=lambda a: a.id):
        frame = messages.snapshot(messages.alarm(alarm, "standing"), seq)
        out.append(Event(seq, ALARM, frame, None, runtime.alarms.owners(alarm)))
    return out


def controller_snapshot(runtime: Runtime, interest: Interest) -> list[Event]:
    """Every controller the actor may see, as it is now (its live frame plus `snapshot: true`)."""
    seq = runtime.bus.last_seq
    out = []
    for frame in runtime.controllers.views(interest.actor) if interest.actor else []:
        out.append(Event(seq, CONTROLLER, messages.snapshot(frame, seq), frame["id"], frame["node"]))
    return out


def program_snapshot(runtime: Runtime, interest: Interest) -> list[Event]:
    """Every program unit the actor may see, as it is now (its live frame plus `snapshot: true`)."""
    seq = runtime.bus.last_seq
    out = []
    for frame in runtime.programs.views(interest.actor) if interest.actor else []:
        nodes = runtime.programs.units[frame["unit"]].nodes
        out.append(Event(seq, PROGRAM, messages.snapshot(frame, seq), frame["unit"], nodes))
    return out


def command_snapshot(runtime: Runtime, command: Command) -> Event:
    """A command's present status in the command_status frame shape."""
    seq = runtime.bus.last_seq
    frame = messages.snapshot(messages.command_status(command), seq)
    return Event(seq, COMMAND_STATUS, frame, None, runtime.config.node_of(command.endpoint_id))


def reply(frame: dict[str, Any]) -> Event:
    """A frame from `bevforge.messages` for one connection only (connected, pong, error, ...):
    never published, seq 0."""
    return Event(0, frame["type"], frame, None, None)
