"""What waits for the broker: bounded, coalescing, so a slow or absent broker costs memory that stays flat.

Why its own part: the bus must never wait for MQTT, and the broker may be gone for hours. The pump
(`bridge.py`) moves every bus event in here at once; the link sends from here when it can:
- an endpoint's state: only the newest waits (one entry per endpoint; a reconnect republishes every
  endpoint anyway, so the waiting ones are dropped then: `reset_states`);
- an alarm: the newest transition of each occurrence waits (its retained topic ends up right); beyond
  `limit` occurrences the oldest waiting one is dropped;
- command transitions: each waits in order up to `limit`, the oldest dropped beyond (counted).
Alarms go out first, then commands, then states: what a person must act on leads.
No I/O here; `Outgoing` is a finished MQTT message.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bevforge import messages
from bevforge.bus import ALARM, COMMAND_STATUS, TELEMETRY, Event
from bevforge.mqtt import topics

if TYPE_CHECKING:
    from bevforge.config import Endpoint, PlantConfig
    from bevforge.domain import EndpointState

STATE, ALARM_KIND, COMMAND_KIND, OTHER = "state", "alarm", "command", "other"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message ready to send. `kind`/`key` say what it stands for, so a failed send is put back."""

    topic: str
    payload: bytes
    retain: bool
    kind: str = OTHER
    key: Any = None


def alarm_stands(frame: dict[str, Any]) -> bool:
    """Still an open occurrence (active, unacknowledged or latched): its retained topic stays."""
    return bool(frame.get("active") or not frame.get("acked", True) or frame.get("latched"))


class Outbox:
    """The messages waiting for the broker (see the module docstring for the bounds)."""

    def __init__(self, root: str, config_of: Callable[[], PlantConfig], limit: int,
                 request_ids: Callable[[str], str | None] | None = None) -> None:
        self.root = root
        self.config_of = config_of  # the runtime's config now (a reload may rename or remove endpoints)
        self.limit = limit
        self.request_ids = request_ids or (lambda _cid: None)  # an MQTT command's requestId, echoed
        self._states: OrderedDict[int, Event] = OrderedDict()
        self._alarms: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._commands: deque[dict[str, Any]] = deque()
        self._retry: deque[Outgoing] = deque()  # alarms and commands whose send failed: first next time
        self._ready = asyncio.Event()
        self.dropped = 0  # alarm and command messages given up for want of room (states only coalesce)

    def __len__(self) -> int:
        return len(self._states) + len(self._alarms) + len(self._commands) + len(self._retry)

    # -- in ------------------------------------------------------------------------------------

    def add(self, event: Event) -> None:
        """A bus event: keep what the broker must get of it. Never blocks."""
        if event.type == TELEMETRY:
            self._states[event.key] = event
            self._states.move_to_end(event.key)
        elif event.type == ALARM:
            alarm_id = event.payload.get("alarmId")
            if alarm_id is None:
                return
            self._alarms[alarm_id] = event.payload
            self._alarms.move_to_end(alarm_id)
            while len(self._alarms) > self.limit:
                self._alarms.popitem(last=False)
                self.dropped += 1
        elif event.type == COMMAND_STATUS:
            self._commands.append(event.payload)
            while len(self._commands) > self.limit:
                self._commands.popleft()
                self.dropped += 1
        else:
            return
        self._ready.set()

    def put_back(self, item: Outgoing) -> None:
        """A send failed (the link went down): an alarm or command message goes first next time; a state is
        republished by the reconnect's snapshot anyway."""
        if item.kind in (ALARM_KIND, COMMAND_KIND):
            self._retry.appendleft(item)
            self._ready.set()

    def add_snapshot(self, item: Outgoing) -> None:
        """A message taken from the plant's present state (the bus queue was lost): sent first."""
        self._retry.append(item)
        self._ready.set()

    def reset_alarms(self, standing: set[int]) -> None:
        """A reconnect republishes the standing alarms: what waits of them is older; ended ones stay queued."""
        for alarm_id in standing:
            self._alarms.pop(alarm_id, None)
        self._retry = deque(item for item in self._retry if not (item.kind == ALARM_KIND and item.key in standing))

    def reset_states(self) -> None:
        """A reconnect republishes every endpoint from the plant: the states waiting are older than that."""
        self._states.clear()

    # -- out -----------------------------------------------------------------------------------

    async def wait(self) -> None:
        while not len(self):
            self._ready.clear()
            await self._ready.wait()

    def pop(self) -> list[Outgoing]:
        """The next message(s) to send: an ended alarm is two (its last frame, then the empty retained
        message that removes it); an entry that no longer maps to a topic is none."""
        if self._retry:
            return [self._retry.popleft()]
        if self._alarms:
            _, frame = self._alarms.popitem(last=False)
            return self.alarm_messages(frame)
        if self._commands:
            return [self.command_message(self._commands.popleft())]
        if self._states:
            _, event = self._states.popitem(last=False)
            message = self.state_message(event.key, event.data.encode())
            return [] if message is None else [message]
        return []

    # -- the messages --------------------------------------------------------------------------

    def state_message(self, endpoint_id: int, payload: bytes) -> Outgoing | None:
        """`<root>/<node>/<endpoint>/state`, retained: the telemetry frame as /ws sends it (value, quality,
        timestamp, unit): a stale or bad value is published with that quality, never as good."""
        endpoint = self.config_of().endpoints_by_id.get(endpoint_id)
        if endpoint is None:  # removed by a live reload since it was published
            return None
        return Outgoing(topics.state(self.root, endpoint.node, endpoint.name), payload, True, STATE, endpoint_id)

    def snapshot_state(self, endpoint: Endpoint, state: EndpointState, seq: int) -> Outgoing:
        frame = messages.snapshot(messages.telemetry(endpoint, state), seq)
        return Outgoing(topics.state(self.root, endpoint.node, endpoint.name), orjson.dumps(frame), True, STATE,
                        endpoint.id)

    def alarm_messages(self, frame: dict[str, Any]) -> list[Outgoing]:
        """Retained while the occurrence stands; once it is over its last frame goes out unretained and an
        empty retained message removes the topic from the broker."""
        topic = topics.alarm(self.root, frame["alarmId"])
        body = orjson.dumps(frame)
        if alarm_stands(frame):
            return [Outgoing(topic, body, True, ALARM_KIND, frame["alarmId"])]
        return [Outgoing(topic, body, False, ALARM_KIND, frame["alarmId"]),
                Outgoing(topic, b"", True, ALARM_KIND, frame["alarmId"])]

    def command_message(self, frame: dict[str, Any]) -> Outgoing:
        """`<root>/commands/<commandId>`, not retained: the command_status frame, with the requestId of a
        command that came in over MQTT with one."""
        request_id = self.request_ids(frame["commandId"])
        if request_id is not None:
            frame = {**frame, "requestId": request_id}
        return Outgoing(topics.command(self.root, frame["commandId"]), orjson.dumps(frame), False, COMMAND_KIND,
                        frame["commandId"])
