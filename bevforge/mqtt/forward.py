"""Store-and-forward, the site's side: its history and events to a central panel, complete and once (docs/mqtt.md).

A site forwards up to three streams (`mqtt.forward.streams`), each its own append-only table in row-id
order, so nothing is buffered twice and a restart resumes from the store: its history (`telemetry`, every
sample the history writer has stored), its alarm journal (`alarm_journal`) and its audit journal (`audit`,
its commands' requests and results among them). Each stream is forwarded on its own, as below. Batches of
`batch_rows` go on `<root>/history` (QoS 1), at most `window_batches` ahead of the centre's
acknowledgement. A centre acknowledges a batch only after committing it (bevforge/store/forward_rows.py),
and the acknowledged position is the one thing this side keeps (`forward_marks`): after a lost
connection, a restart of either side, an acknowledgement that does not come within `ack_timeout_s`
(doubling up to ten times that), a centre that reports a gap or a centre that says it has (re)connected
(`hello`), sending starts again from it. The
centre skips what it already has, so a batch sent twice is stored once.

Nothing here is on the control path: the forwarding task reads the store in a worker thread and
talks only to the broker; while the broker or the centre is away, history simply waits in the store
(retention still applies), and `alarm_after_s` without an acknowledgement raises the forwarding alarm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bevforge import messages
from bevforge.alarms.history import journal_view
from bevforge.audit import view as audit_view
from bevforge.domain import Severity
from bevforge.mqtt import topics
from bevforge.store.forward_rows import (
    ALARM_JOURNAL,
    AUDIT,
    TELEMETRY,
    audit_after,
    forward_mark,
    history_after,
    journal_after,
    newest_audit_id,
    newest_history_id,
    newest_journal_id,
    save_ack,
)
from bevforge.tasks import cancel_if_asked, stop_task

if TYPE_CHECKING:
    import aiomqtt
    from sqlalchemy.engine import Engine

    from bevforge.alarms import AlarmService
    from bevforge.config import MqttForward
    from bevforge.store import Database

log = logging.getLogger(__name__)

ALARM_KEY = "mqtt:forward"  # the history's forwarding alarm; the events' are `mqtt:forward:<stream>`
ALARM_KIND = "forwarding"
IDLE_POLL_S = 1.0  # caught up: how often the store is asked for new rows (the history writer flushes every 0.5 s)
WATCH_S = 5.0  # how often the backlog is checked for the forwarding alarm


def _journal_rows(engine: Engine, after: int, limit: int) -> list[dict[str, Any]]:
    return [journal_view(row) | {"node": node} for row, node in journal_after(engine, after, limit)]


def _audit_rows(engine: Engine, after: int, limit: int) -> list[dict[str, Any]]:
    return [audit_view(row) for row in audit_after(engine, after, limit)]


@dataclass(frozen=True)
class Stream:
    """One forwarded table: how its rows are read (oldest first, above an id) and what the alarm calls it."""

    name: str
    what: str  # the forwarding alarm's words: "History", "The alarm journal", "The audit journal"
    rows: Callable[[Engine, int, int], list[Any]]  # (engine, after, limit) → the rows as they go on the wire
    row_id: Callable[[Any], int]  # a wire row's id at the site
    newest: Callable[[Engine], int]  # the table's newest id


# history rows are compact lists (`[id, node, endpoint, …]`); the events are objects with their REST names
STREAMS: dict[str, Stream] = {
    TELEMETRY: Stream(TELEMETRY, "History", history_after, lambda row: int(row[0]), newest_history_id),
    ALARM_JOURNAL: Stream(ALARM_JOURNAL, "The alarm journal", _journal_rows, lambda row: int(row["id"]),
                          newest_journal_id),
    AUDIT: Stream(AUDIT, "The audit journal", _audit_rows, lambda row: int(row["id"]), newest_audit_id),
}


class SiteForwarding:
    """Every stream of `mqtt.forward.streams`, each with its own position; acknowledgements sorted to them."""

    def __init__(self, settings: MqttForward, root: str, qos: int, db: Database, alarms: AlarmService) -> None:
        users = frozenset(settings.centres)
        self.streams = {name: StreamForwarder(settings, root, qos, db, alarms, users, STREAMS[name])
                        for name in settings.streams}
        self.users = users
        self.acks_refused = 0  # acks for a stream this site does not forward (or not JSON)

    @property
    def store(self) -> str:
        return next(iter(self.streams.values())).store

    async def start(self) -> None:
        for forwarder in self.streams.values():
            await forwarder.start()

    async def stop(self) -> None:
        for forwarder in self.streams.values():
            await forwarder.stop()

    def status(self) -> dict[str, Any]:
        return {"store": self.store, "streams": {name: f.status() for name, f in self.streams.items()}}

    async def run(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as group:
            for forwarder in self.streams.values():
                group.create_task(forwarder.run(client), name=f"mqtt-forward-{forwarder.stream.name}")

    def take_ack(self, user: str, payload: bytes) -> None:
        """`<root>/cmd/<user>/ack`: a centre's hello goes to every stream, an acknowledgement to its own."""
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self.acks_refused += 1
            log.warning("mqtt forward: ack from %s refused (not a JSON object)", user)
            return
        if body.get("hello") is True:
            if user not in self.users:
                self.acks_refused += 1
                log.warning("mqtt forward: hello from %s refused (not one of mqtt.forward.centres)", user)
                return
            for forwarder in self.streams.values():
                forwarder.take_ack(user, body)
            return
        forwarder = self.streams.get(body.get("stream", TELEMETRY))  # type: ignore[arg-type]
        if forwarder is None:
            self.acks_refused += 1
            log.warning("mqtt forward: ack from %s refused (stream %r is not forwarded)", user, body.get("stream"))
            return
        forwarder.take_ack(user, body)


class StreamForwarder:
    """One stream of the site (its history, or a journal) on `<root>/history`, re-sent from the last acknowledged
    row until a centre has it."""

    def __init__(self, settings: MqttForward, root: str, qos: int, db: Database, alarms: AlarmService,
                 users: frozenset[str], stream: Stream = STREAMS[TELEMETRY]) -> None:
        self.stream = stream
        self.alarm_key = ALARM_KEY if stream.name == TELEMETRY else f"{ALARM_KEY}:{stream.name}"
        self.settings = settings
        self.root = root
        self.qos = qos
        self.db = db
        self.alarms = alarms
        self.users = users  # who may acknowledge: mqtt.forward.centres (central panels' users, in mqtt.users)
        self.store = ""
        self.acked = 0  # the last row id a centre has committed
        self.sent = 0  # the last row id sent on this connection
        self.in_flight: deque[int] = deque()  # the upTo of each batch sent and not yet acknowledged
        self.newest = 0  # the newest history row id, as last looked at
        self.rows_sent = 0
        self.batches_sent = 0
        self.resends = 0
        self.gaps = 0
        self.acks_refused = 0
        self.hellos = 0  # centres that said they listen (each sends from the last acknowledged row at once)
        self.last_ack: float = time.monotonic()  # the last ack that moved the position on
        self.behind_since: float | None = None  # when rows were first seen waiting (None: caught up)
        self._acked = asyncio.Event()
        self._epoch = 0  # raised by every rewind: a batch read or sent before it is not counted as in flight
        self._watch: asyncio.Task[None] | None = None
        self._alarm_up = False

    async def start(self) -> None:
        """Read (or make) this database's store name and acknowledged position; watch the backlog."""
        self.store, self.acked = await self.db.write(forward_mark, self.db.engine, self.stream.name)
        self.sent = self.acked
        self._watch = asyncio.create_task(self._watch_backlog(), name=f"mqtt-forward-watch-{self.stream.name}")

    async def stop(self) -> None:
        await stop_task(self._watch)

    def status(self) -> dict[str, Any]:
        return {"store": self.store, "ackedId": self.acked, "newestId": self.newest,
                "waitingRows": max(0, self.newest - self.acked), "rowsSent": self.rows_sent,
                "batchesSent": self.batches_sent, "resends": self.resends, "gaps": self.gaps, "hellos": self.hellos,
                "lastAckS": round(time.monotonic() - self.last_ack, 1)}

    # -- sending (one task per broker connection) -----------------------------------------------

    async def run(self, client: aiomqtt.Client) -> None:
        """Send from the acknowledged position, keep the window full, start again when acks stop coming."""
        self._rewind()
        wait_s = self.settings.ack_timeout_s
        while True:
            self._acked.clear()  # an ack that comes while sending leaves it set: the wait below returns at once
            while len(self.in_flight) < self.settings.window_batches:
                # the batch is labelled with the position it was read from: an ack, a gap or a hello that moves
                # the position while the rows are read (or sent) must not give them another `after`, or the
                # centre would take rows (after, upTo] as complete while the rows between were never sent
                after, epoch = self.sent, self._epoch
                rows = await self.db.read(self.stream.rows, self.db.engine, after, self.settings.batch_rows)
                if epoch != self._epoch or after != self.sent:
                    continue  # the position moved meanwhile: read again from where it is now
                if not rows:
                    break
                up_to = self.stream.row_id(rows[-1])
                payload = orjson.dumps(messages.history_batch(self.store, after, up_to, rows, self.stream.name))
                await client.publish(topics.history(self.root), payload, qos=self.qos)
                cancel_if_asked()  # Python 3.11: a stop must not be lost in the publish (bevforge/tasks.py)
                self.rows_sent += len(rows)
                self.batches_sent += 1
                if epoch != self._epoch:
                    continue  # rewound while sending: the batch went out as read (the centre judges it), no more
                if up_to > self.acked:  # (an ack that came meanwhile may already cover it)
                    self.in_flight.append(up_to)
                self.sent = max(self.sent, up_to)
            try:
                await asyncio.wait_for(self._acked.wait(), wait_s if self.in_flight else IDLE_POLL_S)
                cancel_if_asked()  # an ack and a stop at the same instant: the stop wins
                wait_s = self.settings.ack_timeout_s
            except TimeoutError:
                if self.in_flight:  # nobody acknowledged in time: the centre is away or lost a batch
                    self.resends += 1
                    wait_s = min(wait_s * 2, self.settings.ack_timeout_s * 10)
                    log.info("mqtt forward: no ack for %s rows %d..%d within %g s; sending again from %d",
                             self.stream.name, self.acked + 1, self.sent, wait_s / 2, self.acked)
                    self._rewind()

    def _rewind(self) -> None:
        self._epoch += 1
        self.sent = self.acked
        self.in_flight.clear()

    # -- acknowledgements (from the bridge's receive loop) ----------------------------------------

    def take_ack(self, user: str, body: dict[str, Any]) -> None:
        """A centre's `<root>/cmd/<user>/ack` of this stream: move the acknowledged position on (never back) and
        store it; a hello: send from the acknowledged position now."""
        if body.get("hello") is True and user in self.users:
            self.hellos += 1  # a centre (re)connected and listens: send from the last acknowledged row now
            self._rewind()
            self._acked.set()
            return
        up_to = body.get("upTo")
        if (user not in self.users or body.get("store") != self.store
                or not isinstance(up_to, int) or isinstance(up_to, bool) or up_to < 0):
            self.acks_refused += 1
            log.warning("mqtt forward: %s ack from %s refused (unknown user, another store or no upTo)",
                        self.stream.name, user)
            return
        if up_to > self.acked:  # the centre's watermark: every row of this store up to it is committed there
            self.acked = up_to
            self.last_ack = time.monotonic()
            self.db.write_later(save_ack, self.db.engine, up_to, self.stream.name)
        self.sent = max(self.sent, self.acked)
        while self.in_flight and self.in_flight[0] <= self.acked:
            self.in_flight.popleft()
        if body.get("gap") is True:
            self.gaps += 1
            self._rewind()
        self._acked.set()

    # -- the forwarding alarm -----------------------------------------------------------------------

    async def _watch_backlog(self) -> None:
        every_s = min(WATCH_S, max(0.2, self.settings.alarm_after_s / 4))
        while True:
            await asyncio.sleep(every_s)
            try:
                self.newest = await self.db.read(self.stream.newest, self.db.engine)
            except Exception as exc:  # the store's own alarm tells about the store
                log.debug("mqtt forward: newest history id unreadable: %s", exc)
                continue
            self._check_alarm(time.monotonic())

    def _check_alarm(self, now: float) -> None:
        """Raised when rows have waited `alarm_after_s` with no acknowledgement moving on; cleared once the
        centre has caught up or acknowledges again."""
        if self.newest <= self.acked:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = now
        behind = (self.behind_since is not None
                  and now - max(self.behind_since, self.last_ack) > self.settings.alarm_after_s)
        if behind and not self._alarm_up:
            self._alarm_up = True
            waited = now - max(self.behind_since or now, self.last_ack)
            self.alarms.raise_alarm(
                self.alarm_key, ALARM_KIND, Severity.LOW,
                f"{self.stream.what} not forwarded to the central panel for {waited:.0f} s "
                f"({self.newest - self.acked} rows waiting): kept here and sent when a centre acknowledges")
        elif not behind and self._alarm_up:
            self._alarm_up = False
            self.alarms.clear(self.alarm_key)
