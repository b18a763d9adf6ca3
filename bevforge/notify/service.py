"""NotificationService: alarms and program prompts told to people away from the kiosk (Apprise).

It is a reader of the bus like a screen: the alarm engine publishes `alarm` frames and the program
service `program` frames; this service takes them from its own bounded bus queue and never calls
back into alarm handling, so nothing it does (a dead SMTP server, a slow Telegram API) can delay an
alarm being raised, shown or acknowledged. Three tasks and a thread pool:

- `listen` turns frames into messages by the rules of `policy` (route, quiet hours, rate window);
  it does no I/O, and puts each message on a bounded queue (full: the message is dropped, logged
  and shown as `dropped`);
- `tick` runs on the runtime's clock once a second: escalations that fell due, digests whose
  window opened;
- `WORKERS` senders take messages off the queue and try each on the thread pool with a time limit;
  a failed try waits `retry_s` (doubling up to `retry_max_s`, on the clock) and is queued again,
  until `attempts` tries failed.

The last `KEPT` deliveries are kept for the status screen and GET /api/notifications/deliveries;
each final state is logged. Secrets never appear in either (`secrets.SecretBook.mask`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bevforge import permissions
from bevforge.bus import ALARM, PROGRAM, Event, EventBus, Subscriber, SubscriberClosed
from bevforge.clock import Clock
from bevforge.errors import NOT_FOUND, UNKNOWN_RECIPIENT, NotFound
from bevforge.messages import iso
from bevforge.notify.policy import Chase, RateWindow, quiet_for
from bevforge.notify.secrets import MaskingFilter, SecretBook, read_secrets_file
from bevforge.notify.sender import APPRISE_LOGGER, Target, load_target, send_blocking
from bevforge.tasks import stop_task

if TYPE_CHECKING:
    from bevforge.audit import AuditLog
    from bevforge.config import NotificationSettings
    from bevforge.domain import Actor

log = logging.getLogger(__name__)

TICK_S = 1.0  # escalations and digests are looked at once a clock second
KEPT = 500  # deliveries kept for the status screen and the REST view
WORKERS = 4  # messages in flight at once (and threads in the pool)
PROMPT_PRIORITY = "medium"  # what quiet hours treat a program's prompt as
DIGEST_LINES = 200  # a digest lists at most this many, then says how many more


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"  # a try failed; the next waits its backoff
    SENT = "sent"
    FAILED = "failed"  # every try failed
    QUIET = "quiet"  # not sent: the recipient's quiet hours, a priority they do not take then
    DROPPED = "dropped"  # not sent: the queue was full


@dataclass
class Delivery:
    """One message to one recipient, from queued to sent or failed."""

    id: int
    recipient: str
    kind: str  # alarm | escalation | clear | digest | prompt | test
    title: str
    body: str
    priority: str | None
    alarm_id: int | None
    created_at: datetime
    state: DeliveryState = DeliveryState.QUEUED
    attempts: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None
    next_try_at: datetime | None = None
    done: set[int] = field(default_factory=set)  # the channels (URL indexes) that took it already
    # what it is about belongs to these nodes (the bus event's, as `permissions.node_filter` reads them): a
    # node-limited technician sees only the deliveries of what they may see; a digest (of anything) is for
    # unlimited actors only, a test message for every technician
    owners: permissions.Owners = None
    everyone: bool = False

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "recipient": self.recipient, "kind": self.kind, "priority": self.priority,
                "alarmId": self.alarm_id, "title": self.title, "state": self.state.value, "attempts": self.attempts,
                "lastError": self.last_error, "createdAt": iso(self.created_at),
                "updatedAt": iso(self.updated_at or self.created_at), "nextTryAt": iso(self.next_try_at)}


@dataclass
class _Held:
    """A message the rate window held back, waiting for the recipient's digest."""

    at: datetime
    priority: str | None
    title: str


@dataclass
class _Recipient:
    target: Target
    window: RateWindow
    held: list[_Held] = field(default_factory=list)
    digest_due: float | None = None


class NotificationService:
    """Reads alarm and program frames off the bus and tells the configured recipients (docs/integrations.md)."""

    def __init__(self, settings: NotificationSettings, bus: EventBus, clock: Clock, audit: AuditLog | None = None,
                 timezone: str = "UTC") -> None:
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.audit = audit
        try:
            self.zone: ZoneInfo | Any = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            log.error("notifications: unknown time zone %r, quiet hours in UTC", timezone)
            self.zone = UTC
        file_values, problem = read_secrets_file(settings.secrets_file)
        if problem is not None:
            log.error("%s", problem)
        self.book = SecretBook(file_values)
        self.recipients = {name: _Recipient(load_target(name, r.urls, self.book), RateWindow(settings.rate_limit))
                           for name, r in settings.recipients.items()}
        for name, recipient in self.recipients.items():
            for channel in recipient.target.channels:
                if channel.problem is not None:
                    log.error("notifications: recipient %s: %s: %s", name, channel.shown, channel.problem)
        self.chases: dict[int, Chase] = {}
        self._owners: dict[int, permissions.Owners] = {}  # each chased alarm's nodes, for its later deliveries
        self._prompts: dict[str, set[tuple[int, str]]] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=KEPT)
        self._ids = itertools.count(1)
        self.queue: asyncio.Queue[Delivery] | None = None
        self.dropped = 0
        self._subscriber: Subscriber | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._retries: set[asyncio.Task[Any]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._filter = MaskingFilter(self.book)

    # -- start and stop ---------------------------------------------------------------------------

    def start(self) -> None:
        logging.getLogger(APPRISE_LOGGER).addFilter(self._filter)
        self.queue = asyncio.Queue(self.settings.queue)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="notify")
        self._subscriber = self._subscribe()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="notify-listen"),
                       loop.create_task(self._tick_forever(), name="notify-tick")]
        self._tasks += [loop.create_task(self._work(), name=f"notify-send-{i}") for i in range(WORKERS)]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._retries]:
            await stop_task(task)
        self._tasks, self._retries = [], set()
        if self._subscriber is not None:
            self._subscriber.close("stopped")
        if self._pool is not None:  # a try stuck in a dead server's socket is left to its own timeout
            self._pool.shutdown(wait=False, cancel_futures=True)
        logging.getLogger(APPRISE_LOGGER).removeFilter(self._filter)

    def _subscribe(self) -> Subscriber:
        return self.bus.subscribe(lambda e: e.type in (ALARM, PROGRAM), limit=10_000, name="notifications")

    # -- frames in ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            assert self._subscriber is not None
            try:
                events = await self._subscriber.get_many()
            except SubscriberClosed as exc:
                log.error("notifications fell behind the bus (%s): alarms in between are not told", exc.reason)
                self._subscriber = self._subscribe()
                continue
            for event in events:
                try:
                    self.handle(event)
                except Exception:
                    log.exception("notifications: cannot handle %r", event)

    def handle(self, event: Event) -> None:
        """One frame off the bus: decide who is told what (no I/O)."""
        if event.type == ALARM:
            self._on_alarm(event.payload, event.node)
        elif event.type == PROGRAM and self.settings.prompts:
            self._on_program(event.payload, event.node)

    def _on_alarm(self, alarm: dict[str, Any], owners: permissions.Owners = None) -> None:
        alarm_id, word, priority = alarm["alarmId"], alarm["event"], alarm["priority"]
        now_s = self.clock.monotonic()
        if word == "raised" and alarm["active"]:
            route = self.settings.routes.get(priority)
            if route is None:
                return
            chase = self.chases[alarm_id] = Chase(alarm_id, priority, route)
            self._owners[alarm_id] = owners
            name = chase.first(now_s)
            chase.told.append(name)
            self._tell(name, "alarm", priority, alarm_id, self._alarm_title(alarm), self._alarm_body(alarm), now_s,
                       owners)
            return
        chase = self.chases.get(alarm_id)
        if chase is None:
            return
        if alarm["acked"] or alarm.get("shelved") or alarm.get("suppressed") or alarm.get("outOfService"):
            chase.stop()  # someone answered (or put it aside on purpose): nobody further is woken
        if word == "cleared" and not alarm["active"]:
            chase.stop()
            if self.settings.on_clear:
                title = f"[{self.settings.title_prefix}] Cleared: {alarm['message']}"
                body = f"Cleared at {alarm.get('clearedAt') or iso(self.clock.now())}\n\n" + self._alarm_body(alarm)
                for name in chase.told:
                    self._tell(name, "clear", priority, alarm_id, title, body, now_s, owners)
        if not alarm["active"]:
            self.chases.pop(alarm_id, None)
            self._owners.pop(alarm_id, None)

    def _on_program(self, program: dict[str, Any], owners: permissions.Owners = None) -> None:
        unit = program["unit"]
        waiting = {(p["step"], p["key"]): p for p in program.get("prompts", [])}
        seen = self._prompts.get(unit, set())
        self._prompts[unit] = set(waiting)
        now_s = self.clock.monotonic()
        for key in waiting.keys() - seen:
            prompt = waiting[key]
            title = f"[{self.settings.title_prefix}] {unit}: waiting for you — {prompt['message']}"
            body = (f"Program {program.get('name') or ''} on {unit} waits for an operator's answer:\n"
                    f"{prompt['message']}\n\nSince {prompt['since']}")
            for name in self.settings.prompts:
                self._tell(name, "prompt", PROMPT_PRIORITY, None, title, body, now_s, owners)

    def _alarm_title(self, alarm: dict[str, Any]) -> str:
        return f"[{self.settings.title_prefix}] {alarm['priority'].upper()} alarm: {alarm['message']}"

    @staticmethod
    def _alarm_body(alarm: dict[str, Any]) -> str:
        lines = [alarm["message"], "", f"Priority: {alarm['priority']}", f"Node: {alarm.get('node') or '—'}"]
        if alarm.get("value") is not None:
            lines.append(f"Value: {alarm['value']}")
        lines += [f"Raised: {alarm.get('raisedAt')}", f"Alarm: {alarm['alarmId']} ({alarm['ruleId']})"]
        return "\n".join(lines)

    # -- the rules: quiet hours, rate window, digest -------------------------------------------------

    def _local_time(self) -> Any:
        return self.clock.now().astimezone(self.zone).time()

    def _tell(self, name: str, kind: str, priority: str | None, alarm_id: int | None, title: str, body: str,
              now_s: float, owners: permissions.Owners = None) -> Delivery | None:
        recipient = self.recipients[name]
        quiet = self.settings.recipients[name].quiet_hours
        if priority is not None and quiet_for(quiet, self._local_time(), priority):
            delivery = self._record(name, kind, priority, alarm_id, title, body, owners)
            delivery.state = DeliveryState.QUIET
            log.info("notification to %s not sent (quiet hours): %s", name, self.book.mask(title))
            return delivery
        if not recipient.window.allows(now_s):
            recipient.held.append(_Held(self.clock.now(), priority, title))
            if recipient.digest_due is None:
                recipient.digest_due = recipient.window.next_free(now_s)
            return None
        recipient.window.take(now_s)
        return self._queue(self._record(name, kind, priority, alarm_id, title, body, owners))

    def _digest(self, name: str, recipient: _Recipient, now_s: float) -> None:
        held, recipient.held, recipient.digest_due = recipient.held, [], None
        recipient.window.take(now_s)
        title = f"[{self.settings.title_prefix}] Digest: {len(held)} notifications held back by the rate limit"
        lines = [f"{h.at.astimezone(self.zone):%H:%M:%S}  {h.title}" for h in held[:DIGEST_LINES]]
        if len(held) > DIGEST_LINES:
            lines.append(f"… and {len(held) - DIGEST_LINES} more")
        self._queue(self._record(name, "digest", None, None, title, "\n".join(lines)))

    def tick(self, now_s: float) -> None:
        """Escalations that fell due and digests whose window opened, at clock time `now_s`."""
        for chase in list(self.chases.values()):
            name = chase.escalate(now_s)
            if name is None:
                continue
            chase.told.append(name)
            minutes = chase.route.escalate_after_min
            previous = chase.told[-2]
            title = (f"[{self.settings.title_prefix}] ESCALATED {chase.priority.upper()} alarm "
                     f"(unacknowledged, {previous} told {minutes:g} min ago)")
            self._tell(name, "escalation", chase.priority, chase.alarm_id, title,
                       f"Not acknowledged after {minutes:g} min; {', '.join(chase.told[:-1])} told before you.",
                       now_s, self._owners.get(chase.alarm_id))
        for name, recipient in self.recipients.items():
            if recipient.held and recipient.digest_due is not None and now_s >= recipient.digest_due:
                self._digest(name, recipient, now_s)

    async def _tick_forever(self) -> None:
        deadline = self.clock.monotonic()
        while True:
            deadline += TICK_S
            await self.clock.sleep_until(deadline)
            try:
                self.tick(self.clock.monotonic())
            except Exception:
                log.exception("notifications: tick failed")

    # -- deliveries --------------------------------------------------------------------------------

    def _record(self, name: str, kind: str, priority: str | None, alarm_id: int | None, title: str,
                body: str, owners: permissions.Owners = None) -> Delivery:
        delivery = Delivery(next(self._ids), name, kind, title, body, priority, alarm_id, self.clock.now(),
                            owners=owners)
        self.deliveries.append(delivery)
        return delivery

    def _queue(self, delivery: Delivery) -> Delivery:
        assert self.queue is not None, "start() first"
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.dropped += 1
            delivery.state, delivery.last_error = DeliveryState.DROPPED, "the notification queue is full"
            log.error("notification to %s dropped (queue full): %s", delivery.recipient, self.book.mask(delivery.title))
        return delivery

    async def _work(self) -> None:
        assert self.queue is not None
        while True:
            delivery = await self.queue.get()
            try:
                await self._try(delivery)
            except Exception:
                log.exception("notifications: delivery %d", delivery.id)

    async def _try(self, delivery: Delivery) -> None:
        target = self.recipients[delivery.recipient].target
        delivery.state, delivery.next_try_at = DeliveryState.SENDING, None
        delivery.attempts += 1
        loop = asyncio.get_running_loop()
        errors = []
        for index, channel in enumerate(target.channels):
            if index in delivery.done:
                continue
            try:
                error = await asyncio.wait_for(loop.run_in_executor(
                    self._pool, send_blocking, channel, delivery.title, delivery.body, self.book),
                    self.settings.timeout_s)
            except TimeoutError:
                error = f"no answer within {self.settings.timeout_s:g} s"
            if error is None:
                delivery.done.add(index)
            else:
                errors.append(f"{channel.shown.split('?', 1)[0]}: {error}")  # the URL without Apprise's options
        delivery.updated_at = self.clock.now()
        if not errors:
            delivery.state, delivery.last_error = DeliveryState.SENT, None
            log.info("notification %d to %s sent (%s)", delivery.id, delivery.recipient, delivery.kind)
            return
        delivery.last_error = self.book.mask("; ".join(errors))
        if delivery.attempts >= self.settings.attempts:
            delivery.state = DeliveryState.FAILED
            log.error("notification %d to %s failed after %d tries: %s", delivery.id, delivery.recipient,
                      delivery.attempts, delivery.last_error)
            return
        wait = min(self.settings.retry_s * 2 ** (delivery.attempts - 1), self.settings.retry_max_s)
        delivery.state = DeliveryState.RETRYING
        delivery.next_try_at = datetime.fromtimestamp(self.clock.now().timestamp() + wait, UTC)
        log.warning("notification %d to %s: try %d failed (%s); next in %g s", delivery.id, delivery.recipient,
                    delivery.attempts, delivery.last_error, wait)
        task = asyncio.get_running_loop().create_task(self._again(delivery, wait), name=f"notify-retry-{delivery.id}")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _again(self, delivery: Delivery, wait: float) -> None:
        await self.clock.sleep(wait)
        self._queue(delivery)

    # -- what the screen and the API show, and the technician's test ---------------------------------

    def recent(self, limit: int = 100, actor: Actor | None = None) -> list[dict[str, Any]]:
        """The newest deliveries first, as the REST view and the status screen show them; with `actor`, only
        those about what the actor may see (the node rule: `permissions.node_filter`)."""
        sees = permissions.node_filter(actor) if actor is not None else None
        shown = [d for d in reversed(self.deliveries) if sees is None or d.everyone or sees(d.owners)]
        return [d.view() for d in shown[:limit]]

    def status(self) -> dict[str, Any]:
        """Each recipient (URLs in Apprise's privacy form), held messages and the queue."""
        recipients = []
        for name, recipient in self.recipients.items():
            settings = self.settings.recipients[name]
            quiet = settings.quiet_hours
            recipients.append({
                "name": name, "urls": recipient.target.shown,
                "problems": [self.book.mask(c.problem) for c in recipient.target.channels if c.problem],
                "quietHours": None if quiet is None else {"start": quiet.start, "end": quiet.end,
                                                          "allow": list(quiet.allow)},
                "held": len(recipient.held)})
        return {"enabled": True, "recipients": recipients, "queued": self.queue.qsize() if self.queue else 0,
                "dropped": self.dropped, "escalating": sum(1 for c in self.chases.values() if c.due is not None)}

    def send_test(self, actor: Actor, name: str) -> Delivery:
        """A technician's test message to one recipient: past quiet hours and the rate limit, audited."""
        if name not in self.recipients:
            raise NotFound(f"no recipient named {name!r}", code=UNKNOWN_RECIPIENT, field="recipient")
        if self.audit is not None:
            self.audit.record(actor, "notifications.test", target=name)
        title = f"[{self.settings.title_prefix}] Test message"
        body = f"A test of the notifications to {name}, sent by {actor.user} at {iso(self.clock.now())}."
        delivery = self._record(name, "test", None, None, title, body)
        delivery.everyone = True
        return self._queue(delivery)


def not_configured() -> NotFound:
    """What a test message asks of a plant without a `notifications:` section."""
    return NotFound("notifications are not configured (config.yaml `notifications:`)", code=NOT_FOUND,
                    field="recipient")
