"""The alarm service: definitions and system conditions → ISA-18.2 points → occurrences, journal, bus.

- A *point* is one definition from config.yaml (or a system condition: a device's comms, an
  interlock trip, a blocked command). It carries the runtime state (`alarm_states.PointState`).
- An *occurrence* (`Alarm`, the seed's `alarmId`) opens when the point becomes abnormal and closes
  when it is back to normal, acknowledged and (if latching) reset.
- Every transition is appended to the journal, queued to the DB writer and published on the bus.
Bad or stale input freezes a point's evaluation: an alarm never clears because its input went bad.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from bevforge import interlocks
from bevforge.alarm_rules import ConditionTracker
from bevforge.alarm_states import AlarmEvent, DisplayState, PointState, TransitionRefused, apply
from bevforge.audit import AuditLog
from bevforge.bus import ALARM, EventBus
from bevforge.config import PROCESS_KINDS, AlarmRule, PlantConfig
from bevforge.domain import Actor, EndpointState, Quality, Severity, iso, utcnow
from bevforge.store import AlarmJournalRow, AlarmPointRow, AlarmRow, Database

log = logging.getLogger(__name__)

STATES = tuple(s.value for s in DisplayState)
FLOOD_WINDOW_S = 600.0
FLOOD_COUNT = 10
CHATTER_WINDOW_S = 60.0
CHATTER_CYCLES = 3


@dataclass(slots=True)
class Alarm:
    """One occurrence, as the API and the screens show it."""

    id: int
    rule_id: str
    kind: str
    severity: Severity
    message: str
    endpoint_id: int | None
    node: str | None
    value: Any
    raised_at: datetime
    point: PointState = field(default_factory=PointState)
    cleared_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    closed: bool = False
    chattering: bool = False
    first_out: bool = False

    @property
    def state(self) -> str:
        return self.point.display.value

    @property
    def active(self) -> bool:
        return self.point.active

    @property
    def acked(self) -> bool:
        return self.point.acked

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarmId": self.id, "ruleId": self.rule_id, "kind": self.kind,
            "severity": self.severity.value, "priority": self.severity.value,
            "message": self.message, "endpointId": self.endpoint_id, "node": self.node, "value": self.value,
            "state": self.state, "active": self.point.active, "acked": self.point.acked,
            "latched": self.point.latched, "shelved": self.point.shelf, "shelvedUntil": iso(self.point.shelved_until),
            "suppressed": self.point.suppressed, "outOfService": self.point.out_of_service,
            "chattering": self.chattering, "firstOut": self.first_out,
            "timestamp": iso(self.raised_at), "raisedAt": iso(self.raised_at), "clearedAt": iso(self.cleared_at),
            "ackedAt": iso(self.acked_at), "ackedBy": self.acked_by, "ackComment": self.ack_comment,
        }

    def row(self) -> AlarmRow:
        return AlarmRow(
            id=self.id, rule_id=self.rule_id, endpoint_id=self.endpoint_id, node=self.node, kind=self.kind,
            severity=self.severity.value, message=self.message, value=self.value, active=self.point.active,
            acked=self.point.acked, latched=self.point.latched, state=self.state, raised_at=self.raised_at,
            cleared_at=self.cleared_at, acked_at=self.acked_at, acked_by=self.acked_by,
            ack_comment=self.ack_comment, closed=self.closed,
        )

    @staticmethod
    def from_row(row: AlarmRow) -> Alarm:
        point = PointState(active=row.active, acked=row.acked, latched=row.latched)
        return Alarm(id=row.id or 0, rule_id=row.rule_id, kind=row.kind, severity=Severity(row.severity),
                     message=row.message, endpoint_id=row.endpoint_id, node=row.node, value=row.value,
                     raised_at=row.raised_at, point=point, cleared_at=row.cleared_at, acked_at=row.acked_at,
                     acked_by=row.acked_by, ack_comment=row.ack_comment, closed=row.closed)


@dataclass
class Point:
    key: str
    kind: str
    priority: Severity
    latching: bool = False
    endpoint_id: int | None = None
    node: str | None = None
    rule: AlarmRule | None = None
    tracker: ConditionTracker | None = None
    state: PointState = field(default_factory=PointState)
    occurrence: Alarm | None = None
    momentary: bool = False
    activations: deque[float] = field(default_factory=deque)
    chattering: bool = False


class AlarmNotFound(KeyError):
    pass


class AlarmService:
    """Raises, clears, acknowledges, shelves, resets; publishes and journals every transition."""

    def __init__(self, config: PlantConfig, bus: EventBus, db: Database) -> None:
        self.config = config
        self.bus = bus
        self.db = db
        self.states: Mapping[int, EndpointState] = {}
        self.device_online: Mapping[str, bool] = {}
        self.points: dict[str, Point] = {}
        self._by_endpoint: dict[int, list[Point]] = {}
        self._suppression_inputs: dict[int, list[Point]] = {}
        self._system_defs: dict[tuple[str, str], AlarmRule] = {}
        for rule in config.alarms:
            if rule.kind in PROCESS_KINDS:
                assert rule.endpoint is not None
                point = Point(rule.id, rule.kind, rule.priority, rule.latching, rule.endpoint,
                              config.node_of(rule.endpoint), rule, ConditionTracker(rule))
                self.points[rule.id] = point
                self._by_endpoint.setdefault(rule.endpoint, []).append(point)
                for cond in rule.suppress_when:
                    self._suppression_inputs.setdefault(cond.endpoint, []).append(point)
            else:
                self._system_defs[(rule.kind, rule.device or rule.interlock or "")] = rule
        self.current: dict[int, Alarm] = {}  # open occurrences
        self._recent: OrderedDict[int, Alarm] = OrderedDict()  # newest transitions, ahead of the DB writer
        self._next_id = 1
        self._raises: deque[tuple[float, int]] = deque()
        self.flood_first_out: int | None = None
        self.listeners: list[Callable[[Alarm, str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.audit: AuditLog | None = None

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Reopen occurrences left open by the last run; restore shelves, out-of-service and limits."""
        with self.db.session() as session:
            self._next_id = (session.exec(select(func.max(AlarmRow.id))).one() or 0) + 1
            rows = session.exec(select(AlarmRow).where(AlarmRow.closed == False)).all()  # noqa: E712
            settings = session.exec(select(AlarmPointRow)).all()
        for row in rows:
            alarm = Alarm.from_row(row)
            point = self.points.get(row.rule_id) or self._system_point(row.rule_id, row.kind,
                                                                       Severity(row.severity), row.endpoint_id)
            point.state = alarm.point
            point.occurrence = alarm
            if point.tracker is not None:
                point.tracker.active = alarm.point.active
            self.current[alarm.id] = alarm
        for setting in settings:
            point = self.points.get(setting.rule_id)
            if point is None:
                continue
            point.state = replace(point.state, shelf=setting.shelf, shelved_until=setting.shelved_until,
                                  out_of_service=setting.out_of_service)
            self._apply_overrides(point, setting.overrides or {})

    def start(self) -> None:
        self._task = asyncio.create_task(self._timer(), name="alarm-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _timer(self) -> None:
        """Delays and shelf expiry need time to pass without a new reading."""
        while True:
            await asyncio.sleep(0.25)
            try:
                self.tick(time.monotonic(), utcnow())
            except Exception:
                log.exception("alarm timer failed")

    def tick(self, now_s: float, now: datetime) -> None:
        for point in self.points.values():
            if point.tracker is not None and point.tracker.pending:
                event = point.tracker.tick(now_s)
                if event is not None:
                    self._event(point, event)
            if point.state.shelf == "timed" and point.state.shelved_until and point.state.shelved_until <= now:
                self._event(point, AlarmEvent.SHELF_EXPIRED)
                self._save_point(point, "system")

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, state: EndpointState) -> None:
        """Process definitions on one endpoint; only GOOD values are evaluated (bad input freezes)."""
        eid = state.endpoint_id
        for point in self._suppression_inputs.get(eid, ()):
            self._check_suppression(point)
        points = self._by_endpoint.get(eid)
        if not points or state.quality is not Quality.GOOD or state.value is None:
            return
        now_s = time.monotonic()
        for point in points:
            rule = point.rule
            assert rule is not None and point.tracker is not None
            if rule.suppress_when and not self._suppression_known(rule):
                continue  # whether it should be suppressed is unknown yet: hold, never guess
            reference = None
            if rule.setpoint is not None:
                ref = self.states.get(rule.setpoint)
                if ref is None or ref.quality is not Quality.GOOD or ref.value is None:
                    continue  # no trustworthy reference: freeze
                reference = float(ref.value)
            event = point.tracker.update(state.value, now_s, reference)
            if event is not None:
                self._event(point, event, value=state.value)

    def _suppression_known(self, rule: AlarmRule) -> bool:
        for cond in rule.suppress_when:
            state = self.states.get(cond.endpoint)
            if state is None or state.quality is not Quality.GOOD:
                return False
        return True

    def _check_suppression(self, point: Point) -> None:
        rule = point.rule
        assert rule is not None
        hold = all(interlocks.condition_holds(c, self.states.get(c.endpoint)) for c in rule.suppress_when)
        if hold != point.state.suppressed:
            self._event(point, AlarmEvent.SUPPRESS if hold else AlarmEvent.UNSUPPRESS)

    def quality_changed(self, state: EndpointState, device: str) -> None:
        """An input of a definition went stale or bad while its device still answers: say so."""
        if state.endpoint_id not in self._by_endpoint:
            return
        key = f"stale:{state.endpoint_id}"
        if state.quality is Quality.GOOD:
            self.clear(key)
        elif self.device_online.get(device, True):
            endpoint = self.config.endpoint(state.endpoint_id)
            self.raise_alarm(key, "comms", Severity.LOW,
                             f"{endpoint.display_name}: input {state.quality.value}, its alarms are frozen "
                             f"({state.error or 'no fresh sample'})", endpoint_id=endpoint.id)

    # -- system alarms (comms, trips, blocked commands) ---------------------------------------

    def _system_point(self, key: str, kind: str, priority: Severity, endpoint_id: int | None,
                      node: str | None = None, ref: str | None = None, momentary: bool = False) -> Point:
        point = self.points.get(key)
        if point is None:
            rule = self._system_defs.get((kind, ref or ""))
            if node is None and endpoint_id is not None and endpoint_id in self.config.endpoints_by_id:
                node = self.config.node_of(endpoint_id)
            point = Point(key, kind, rule.priority if rule else priority, rule.latching if rule else False,
                          endpoint_id, node, rule, momentary=momentary)
            self.points[key] = point
        return point

    def raise_alarm(self, key: str, kind: str, severity: Severity, message: str, *,
                    endpoint_id: int | None = None, node: str | None = None, value: Any = None,
                    momentary: bool = False, ref: str | None = None) -> Alarm:
        """Raise a system alarm for condition `key` (no-op if it is already active).

        `ref` names the device or interlock so a config definition can set its priority and text.
        A momentary alarm records an event (a blocked command): born returned-to-normal, it stays
        listed until acknowledged.
        """
        point = self._system_point(key, kind, severity, endpoint_id, node, ref, momentary)
        if point.rule is not None and point.rule.message and "{" not in point.rule.message:
            message = f"{point.rule.message} — {message}"
        if point.state.active and point.occurrence is not None:
            return point.occurrence
        self._event(point, AlarmEvent.CONDITION_TRUE, value=value, message=message)
        assert point.occurrence is not None
        alarm = point.occurrence
        if momentary:
            self._event(point, AlarmEvent.CONDITION_FALSE)
        return alarm

    def clear(self, key: str) -> None:
        point = self.points.get(key)
        if point is not None and point.state.active:
            self._event(point, AlarmEvent.CONDITION_FALSE)

    def is_active(self, key: str) -> bool:
        point = self.points.get(key)
        return point is not None and point.state.active

    # -- the one place a point changes ------------------------------------------------------------

    def _event(self, point: Point, event: AlarmEvent, *, value: Any = None, message: str | None = None,
               actor: Actor | None = None, comment: str | None = None, until: datetime | None = None) -> list[str]:
        new_state, words = apply(point.state, event, latching=point.latching, until=until)
        if not words:
            return words
        user = actor.user if actor is not None else "system"
        if actor is not None and self.audit is not None:
            occurrence = point.occurrence
            self.audit.record(actor, f"alarm.{event.value}", target=point.key,
                              old=point.state.display.value, new=new_state.display.value,
                              detail=(f"alarm {occurrence.id}; " if occurrence else "") + (comment or ""))
        now = utcnow()
        point.state = new_state
        alarm = point.occurrence
        if alarm is None or alarm.closed:
            if not new_state.annunciated:
                # nothing shown to anyone (shelved, suppressed, out of service, or just normal):
                # journal against the point; an occurrence opens once the alarm is annunciated
                self._journal(None, point, words, user, comment, value, message or "", now)
                return words
            alarm = self._open(point, value, message, now)
        alarm.point = new_state
        if value is not None:
            alarm.value = value
        if "cleared" in words:
            alarm.cleared_at = now
        if "acked" in words or "reset" in words:
            alarm.acked_at, alarm.acked_by = now, user
            if comment is not None:
                alarm.ack_comment = comment
        if "raised" in words:
            alarm.cleared_at = None  # an open occurrence that returns to alarm before it closed
            self._note_raise(point, alarm)
        if not new_state.standing:
            alarm.closed = True
            self.current.pop(alarm.id, None)
            point.occurrence = None
            if point.momentary:
                self.points.pop(point.key, None)
        self._journal(alarm, point, words, user, comment, alarm.value, alarm.message, now)
        self._publish(alarm, words[0])
        return words

    def _open(self, point: Point, value: Any, message: str | None, now: datetime) -> Alarm:
        if message is None:
            endpoint = self.config.endpoints_by_id.get(point.endpoint_id) if point.endpoint_id else None
            message = point.tracker.format_message(endpoint.display_name if endpoint else point.key,
                                                   endpoint.unit if endpoint else "") \
                if point.tracker else point.key
        alarm = Alarm(id=self._next_id, rule_id=point.key, kind=point.kind, severity=point.priority,
                      message=message, endpoint_id=point.endpoint_id, node=point.node, value=value, raised_at=now)
        self._next_id += 1
        point.occurrence = alarm
        self.current[alarm.id] = alarm
        return alarm

    def _note_raise(self, point: Point, alarm: Alarm) -> None:
        now_s = time.monotonic()
        self._raises.append((now_s, alarm.id))
        while self._raises and now_s - self._raises[0][0] > FLOOD_WINDOW_S:
            self._raises.popleft()
        if len(self._raises) > FLOOD_COUNT:
            if self.flood_first_out is None:
                self.flood_first_out = self._raises[0][1]
                first = self.current.get(self.flood_first_out)
                if first is not None:
                    first.first_out = True
                    self._publish(first, "first_out")
        else:
            self.flood_first_out = None
        point.activations.append(now_s)
        while point.activations and now_s - point.activations[0] > CHATTER_WINDOW_S:
            point.activations.popleft()
        was = point.chattering
        point.chattering = len(point.activations) >= CHATTER_CYCLES
        alarm.chattering = point.chattering
        if point.chattering and not was:
            self._journal(alarm, point, ["chattering"], "system", None, None, alarm.message, utcnow())

    @property
    def flood(self) -> bool:
        now_s = time.monotonic()
        return sum(1 for t, _ in self._raises if now_s - t <= FLOOD_WINDOW_S) > FLOOD_COUNT

    def _journal(self, alarm: Alarm | None, point: Point, words: list[str], user: str, comment: str | None,
                 value: Any, message: str, now: datetime) -> None:
        rows = [AlarmJournalRow(time=now, alarm_id=alarm.id if alarm else None, rule_id=point.key, event=word,
                                user=user, comment=comment, value=value, state=point.state.display.value,
                                priority=point.priority.value, message=message) for word in words]
        self.db.write_later(self._append_journal, rows)

    def _append_journal(self, rows: list[AlarmJournalRow]) -> None:
        with self.db.session() as session:
            session.add_all(rows)
            session.commit()

    def _publish(self, alarm: Alarm, event: str) -> None:
        self._recent[alarm.id] = alarm
        self._recent.move_to_end(alarm.id)
        while len(self._recent) > 2000:
            self._recent.popitem(last=False)
        self.db.write_later(self._persist, alarm.row())
        self.bus.publish(ALARM, {"type": ALARM, "event": event, **alarm.as_dict()}, node=alarm.node)
        for listener in self.listeners:
            listener(alarm, event)

    def _persist(self, row: AlarmRow) -> None:
        with self.db.session() as session:
            session.merge(row)
            session.commit()

    # -- operator actions --------------------------------------------------------------------------

    def _point_of(self, alarm_id: int) -> Point:
        alarm = self.current.get(alarm_id)
        if alarm is None:
            raise AlarmNotFound(alarm_id)
        point = self.points.get(alarm.rule_id)
        if point is None or point.occurrence is not alarm:
            raise AlarmNotFound(alarm_id)
        return point

    def ack(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        point = self._point_of(alarm_id)
        alarm = point.occurrence
        assert alarm is not None
        if not point.state.acked:
            self._event(point, AlarmEvent.ACK, actor=actor, comment=comment)
        return alarm

    def reset(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        point = self._point_of(alarm_id)
        alarm = point.occurrence
        assert alarm is not None
        self._event(point, AlarmEvent.RESET, actor=actor, comment=comment)
        return alarm

    def shelve(self, rule_id: str, actor: Actor, duration_s: float | None, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        until = utcnow() + timedelta(seconds=duration_s) if duration_s else None
        self._event(point, AlarmEvent.SHELVE, actor=actor, comment=comment, until=until)
        self._save_point(point, actor.user)
        return point

    def unshelve(self, rule_id: str, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        self._event(point, AlarmEvent.UNSHELVE, actor=actor, comment=comment)
        self._save_point(point, actor.user)
        return point

    def set_in_service(self, rule_id: str, in_service: bool, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        event = AlarmEvent.RETURN_TO_SERVICE if in_service else AlarmEvent.REMOVE_FROM_SERVICE
        self._event(point, event, actor=actor, comment=comment)
        self._save_point(point, actor.user)
        return point

    def change_limits(self, rule_id: str, changes: dict[str, Any], actor: Actor) -> tuple[dict[str, Any], Point]:
        """Technician changes limits at runtime; persisted and journalled with old → new."""
        point = self._definition(rule_id)
        if point.tracker is None:
            raise TransitionRefused("this alarm has no limits")
        old = self.limits_of(point)
        self._apply_overrides(point, changes)
        self._save_point(point, actor.user)
        new = self.limits_of(point)
        if self.audit is not None:
            self.audit.record(actor, "alarm.limits", target=rule_id, old=old, new=new)
        self._journal(point.occurrence, point, ["limits_changed"], actor.user, f"{old} → {new}", None,
                      f"limits of {rule_id} changed", utcnow())
        return old, point

    def _apply_overrides(self, point: Point, overrides: dict[str, Any]) -> None:
        tracker = point.tracker
        if tracker is None:
            return
        rule = point.rule
        assert rule is not None
        if "limit" in overrides:
            tracker.limit = float(overrides["limit"])
        if "deadband" in overrides:
            tracker.deadband = float(overrides["deadband"])
        changes = {k: overrides[k] for k in ("on_delay_s", "off_delay_s") if k in overrides}
        if "priority" in overrides:
            point.priority = Severity(overrides["priority"])
        if changes:
            tracker.rule = rule.model_copy(update=changes)
            point.rule = tracker.rule

    @staticmethod
    def limits_of(point: Point) -> dict[str, Any]:
        tracker = point.tracker
        if tracker is None or point.rule is None:
            return {"priority": point.priority.value}
        return {"limit": tracker.limit, "deadband": tracker.deadband, "on_delay_s": point.rule.on_delay_s,
                "off_delay_s": point.rule.off_delay_s, "priority": point.priority.value}

    def _definition(self, rule_id: str) -> Point:
        point = self.points.get(rule_id)
        if point is None or point.momentary:
            raise AlarmNotFound(rule_id)
        return point

    def _save_point(self, point: Point, user: str) -> None:
        overrides = self.limits_of(point) if point.tracker is not None else None
        row = AlarmPointRow(rule_id=point.key, shelf=point.state.shelf, shelved_until=point.state.shelved_until,
                            out_of_service=point.state.out_of_service, overrides=overrides, updated_at=utcnow(),
                            updated_by=user)

        def save() -> None:
            with self.db.session() as session:
                session.merge(row)
                session.commit()

        self.db.write_later(save)

    # -- queries ---------------------------------------------------------------------------------

    def standing(self) -> list[Alarm]:
        return sorted(self.current.values(), key=lambda a: a.id, reverse=True)

    def summary(self, nodes: Iterable[str] | None = None) -> dict[str, Any]:
        allowed = set(nodes) if nodes is not None else None
        counts = {s.value: 0 for s in Severity}
        for alarm in self.current.values():
            if (allowed is None or alarm.node in allowed) and alarm.point.annunciated and not alarm.point.acked:
                counts[alarm.severity.value] += 1
        return {"unacknowledged": counts, "standing": len(self.current), "flood": self.flood,
                "firstOutAlarmId": self.flood_first_out if self.flood else None}

    async def get(self, alarm_id: int) -> Alarm | None:
        alarm = self.current.get(alarm_id) or self._recent.get(alarm_id)
        if alarm is not None:
            return alarm
        row = await self.db.read(self._fetch_one, alarm_id)
        return Alarm.from_row(row) if row else None

    def _fetch_one(self, alarm_id: int) -> AlarmRow | None:
        with self.db.session() as session:
            return session.get(AlarmRow, alarm_id)

    def _fetch_recent(self, limit: int) -> list[AlarmRow]:
        with self.db.session() as session:
            return list(session.exec(select(AlarmRow).order_by(AlarmRow.id.desc()).limit(limit)).all())  # type: ignore[union-attr]

    async def query(self, state: str | None, limit: int = 200, nodes: Iterable[str] | None = None) -> list[Alarm]:
        """Occurrences by display state; `active` (default) means every open occurrence."""
        if state in (None, "active"):
            alarms = self.standing()
        else:
            rows = await self.db.read(self._fetch_recent, limit * 5)
            merged = {r.id: Alarm.from_row(r) for r in rows}
            merged.update(self._recent)
            merged.update(self.current)
            alarms = sorted(merged.values(), key=lambda a: a.id, reverse=True)
            if state != "all":
                alarms = [a for a in alarms if a.state == state]
        if nodes is not None:
            allowed = set(nodes)
            alarms = [a for a in alarms if a.node in allowed]
        return alarms[:limit]

    def definitions(self) -> list[dict[str, Any]]:
        out = []
        for point in self.points.values():
            if point.rule is None or point.momentary:
                continue
            out.append({"ruleId": point.key, "kind": point.kind, "endpointId": point.endpoint_id,
                        "node": point.node, "priority": point.priority.value, "latching": point.latching,
                        "state": point.state.display.value,
                        "shelved": point.state.shelf, "shelvedUntil": iso(point.state.shelved_until),
                        "outOfService": point.state.out_of_service, "suppressed": point.state.suppressed,
                        "chattering": point.chattering, "limits": self.limits_of(point),
                        "alarmId": point.occurrence.id if point.occurrence else None})
        return out
