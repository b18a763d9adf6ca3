"""The event bus: every change in the plant is published here once and fanned out to every view.

Rules (REFERENCE.md §7):
- an event is serialised once, at publish, and every subscriber gets the same bytes;
- publishing never awaits a subscriber: it only appends to per-subscriber bounded queues;
- each subscriber has two budgets, so one kind of traffic cannot crowd out another: telemetry
  coalesces per endpoint while undelivered (latest value wins), so a burst of readings costs at
  most one queued frame per endpoint; alarm, command and reply frames are never dropped and queue
  up to a generous `limit`;
- a subscriber is cut off only for its own backlog: more than `limit` loss-free frames waiting, or
  frames waiting `stall_s` while it took none (a client that stopped reading). It is closed with a
  reason, so it reconnects and resynchronises; a reader that keeps up is never cut off by a burst
  someone else caused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger(__name__)

TELEMETRY = "telemetry"
COMMAND_STATUS = "command_status"
ALARM = "alarm"
CONTROLLER = "controller"
CONFIG = "config"  # a live config reload was applied (bevforge/reload.py)
PROGRAM = "program"


class Event:
    """One published change. `data` is the JSON text every transport sends as is.

    `node` is what the change belongs to, as `permissions.node_filter` reads it: one node (a
    reading, a command), a frozenset of nodes (a device's alarm belongs to the nodes of its
    endpoints), or None / an empty set (a system thing, for actors without a node limit only).
    """

    __slots__ = ("data", "key", "node", "payload", "seq", "type")

    def __init__(self, seq: int, type_: str, payload: dict[str, Any], key: Any,
                 node: str | frozenset[str] | None) -> None:
        self.seq = seq
        self.type = type_
        self.payload = payload
        self.key = key
        self.node = node
        self.data = orjson.dumps(payload).decode()

    @property
    def coalescible(self) -> bool:
        return self.key is not None

    def __repr__(self) -> str:
        return f"Event({self.seq}, {self.type}, {self.data[:80]})"

    @classmethod
    def replayed(cls, past: PastEvent) -> Event:
        """An event again from the ring buffer: the same text; the payload parsed back from it."""
        event = cls.__new__(cls)
        event.seq, event.type, event.key, event.node, event.data = past.seq, past.type, past.key, past.node, past.data
        event.payload = orjson.loads(past.data)
        return event


class PastEvent:
    """What the resume ring keeps of a published event: its text, not its payload dict.

    The text is shared with the live Event, so a full ring of 10 000 costs about half of what
    10 000 Events would (the payload dicts were the other half): memory that stays flat is
    memory that stays small. Replays are rare (an SSE reconnect), so parsing the text back then
    is the cheaper side of the trade.
    """

    __slots__ = ("at", "data", "key", "node", "seq", "type")

    def __init__(self, event: Event, at: float) -> None:
        self.seq, self.type, self.key, self.node, self.data = event.seq, event.type, event.key, event.node, event.data
        self.at = at  # bus clock at publish: the ring also forgets by age


class SubscriberClosed(Exception):
    """Raised by Subscriber.get() once the subscriber was closed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Slot:
    """A coalescing place in the queue: a newer value of the same key replaces the event in it.

    Loss-free events go into the queue as themselves (one pointer per subscriber, the Event shared
    by all), so a generous `limit` costs little memory.
    """

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event = event


class Subscriber:
    """A bounded, coalescing queue owned by one consumer (a socket, an SSE stream, a screen)."""

    def __init__(self, bus: EventBus, wants: Callable[[Event], bool] | None, limit: int, name: str,
                 stall_s: float | None = None) -> None:
        self.bus = bus
        self.wants = wants
        self.limit = limit
        self.stall_s = stall_s  # None: never cut off for not taking (in-process consumers)
        self.name = name
        self._queue: deque[_Slot | Event] = deque()
        self._latest: dict[Any, _Slot] = {}
        self._critical = 0
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self.closed_reason: str | None = None
        self.delivered = 0
        self.coalesced = 0
        self.high_water = 0  # the longest the queue has been: proof that memory stays bounded
        self._taken_at = bus.clock()  # when the consumer last took frames, or when frames began to wait

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, event: Event, now: float | None = None) -> None:
        """Called by the bus; never blocks. `now` is the bus clock at publish (read once per event)."""
        if self.closed_reason is not None:
            return
        if self.wants is not None:
            try:
                wanted = self.wants(event)
            except Exception:
                # A broken filter must cost its own consumer, never the plant that is publishing.
                log.exception("subscriber %s: filter failed on %r", self.name, event)
                self.close("internal error in the subscription filter")
                return
            if not wanted:
                return
        self.push(event, now)

    def push(self, event: Event, now: float | None = None) -> None:
        """Queue an event regardless of the filter (snapshots, direct replies)."""
        if self.closed_reason is not None:
            return
        if self.stall_s is not None:
            now = self.bus.clock() if now is None else now
            if not self._queue:
                self._taken_at = now  # frames start waiting now: an idle hour before is no backlog
            elif now - self._taken_at > self.stall_s:
                self.close(f"too slow: took no frame for {self.stall_s:g} s")
                return
        if event.coalescible:
            slot = self._latest.get(event.key)
            if slot is not None:
                slot.event = event
                self.coalesced += 1
                return
            slot = _Slot(event)
            self._latest[event.key] = slot
            self._queue.append(slot)
        else:
            self._critical += 1
            if self._critical > self.limit:
                self.close(f"too slow: more than {self.limit} undelivered events")
                return
            self._queue.append(event)
        if len(self._queue) > self.high_water:
            self.high_water = len(self._queue)
        self._ready.set()

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self._latest.clear()
            self.bus.unsubscribe(self)
            self._closed.set()
        self._ready.set()

    async def wait_closed(self) -> str:
        """Wait until the subscriber is closed (by its owner or for being too slow); return why.

        A consumer stuck writing to a client that does not read never gets back to get_many(), so
        it watches this to learn that it was cut off.
        """
        await self._closed.wait()
        assert self.closed_reason is not None
        return self.closed_reason

    def _pop(self) -> Event:
        slot = self._queue.popleft()
        if isinstance(slot, _Slot):
            event = slot.event
            if self._latest.get(event.key) is slot:
                del self._latest[event.key]
        else:
            event = slot
            self._critical -= 1
        self.delivered += 1
        return event

    async def get_many(self, max_items: int = 256) -> list[Event]:
        """Wait for at least one event; return everything queued up to `max_items`."""
        while not self._queue:
            if self.closed_reason is not None:
                raise SubscriberClosed(self.closed_reason)
            self._ready.clear()
            await self._ready.wait()
        if self.closed_reason is not None:
            raise SubscriberClosed(self.closed_reason)
        out = [self._pop() for _ in range(min(max_items, len(self._queue)))]
        self._taken_at = self.bus.clock()
        return out

    async def get(self) -> Event:
        return (await self.get_many(1))[0]


class EventBus:
    """In-process publish/subscribe with a ring buffer of recent events (their text) for SSE resume."""

    def __init__(self, history: int = 10000, default_limit: int = 512, history_s: float | None = None) -> None:
        self.clock: Callable[[], float] = time.monotonic  # replaceable, so tests can age a backlog
        self._seq = itertools.count(1)
        self._subscribers: list[Subscriber] = []
        self.recent: deque[PastEvent] = deque(maxlen=history)
        # At most `history` events and none older than `history_s`: a resume needs seconds, and a
        # ring sized by age holds only recent traffic, so it is full (flat) minutes after start.
        self.history_s = history_s
        self.default_limit = default_limit
        self.published = 0
        self.last_seq = 0

    def publish(self, type_: str, payload: dict[str, Any], *, key: Any = None,
                node: str | frozenset[str] | None = None) -> Event:
        seq = next(self._seq)
        payload["seq"] = seq
        event = Event(seq, type_, payload, key, node)
        self.last_seq = seq
        self.published += 1
        now = self.clock()
        recent = self.recent
        recent.append(PastEvent(event, now))
        if self.history_s is not None:
            horizon = now - self.history_s
            while recent[0].at < horizon:
                recent.popleft()
        for sub in tuple(self._subscribers):
            sub.offer(event, now)
        return event

    def subscribe(
        self, wants: Callable[[Event], bool] | None = None, *, limit: int | None = None, name: str = "?",
        stall_s: float | None = None,
    ) -> Subscriber:
        """A new bounded queue. `stall_s` (for consumers across a network): cut off after frames
        waited that long untaken; in-process consumers leave it None."""
        sub = Subscriber(self, wants, limit or self.default_limit, name, stall_s)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        try:
            self._subscribers.remove(sub)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def since(self, seq: int) -> list[Event] | None:
        """Events after `seq` from the ring buffer, or None when they cannot all be replayed.

        None means: the gap is older than the buffer, or `seq` is from the future (a client that
        saw a previous run of the server). Either way the caller must resynchronise from a snapshot.
        """
        if seq > self.last_seq or seq < 0:
            return None
        if seq == self.last_seq:
            return []
        if not self.recent:
            return None
        oldest = self.recent[0].seq
        if seq < oldest - 1:
            return None
        # Sequence numbers in the buffer are consecutive, so the position of seq+1 is known.
        return [Event.replayed(past) for past in itertools.islice(self.recent, seq + 1 - oldest, None)]
