"""Alarms: threshold rules over readings, event alarms raised by the plant, acknowledgement.

The in-memory list is the truth while running (ids are allocated here so an alarm is published the
moment it is raised); every transition is queued to the database writer in order.

The display state is derived from `active` and `acked`, never stored separately (ISA-18.2):
unacknowledged, acknowledged, rtn_unacknowledged (returned to normal, not yet acked), normal.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from bevforge.bus import ALARM, EventBus
from bevforge.config import AlarmRule, PlantConfig
from bevforge.domain import Actor, EndpointState, Quality, Severity, iso, utcnow
from bevforge.store import AlarmRow, Database

STATES = ("unacknowledged", "acknowledged", "rtn_unacknowledged", "normal")


@dataclass(slots=True)
class Alarm:
    id: int
    rule_id: str
    kind: str  # threshold_high, threshold_low, interlock_block, interlock_trip, comms
    severity: Severity
    message: str
    endpoint_id: int | None
    node: str | None
    value: Any
    raised_at: datetime
    active: bool = True
    acked: bool = False
    cleared_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_comment: str | None = None

    @property
    def state(self) -> str:
        if self.active:
            return "acknowledged" if self.acked else "unacknowledged"
        return "normal" if self.acked else "rtn_unacknowledged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarmId": self.id,
            "ruleId": self.rule_id,
            "kind": self.kind,
            "severity": self.severity.value,
            "priority": self.severity.value,
            "message": self.message,
            "endpointId": self.endpoint_id,
            "node": self.node,
            "value": self.value,
            "state": self.state,
            "active": self.active,
            "acked": self.acked,
            "timestamp": iso(self.raised_at),
            "raisedAt": iso(self.raised_at),
            "clearedAt": iso(self.cleared_at),
            "ackedAt": iso(self.acked_at),
            "ackedBy": self.acked_by,
            "ackComment": self.ack_comment,
        }

    def row(self) -> AlarmRow:
        return AlarmRow(
            id=self.id, rule_id=self.rule_id, endpoint_id=self.endpoint_id, node=self.node, kind=self.kind,
            severity=self.severity.value, message=self.message, value=self.value, active=self.active,
            acked=self.acked, raised_at=self.raised_at, cleared_at=self.cleared_at, acked_at=self.acked_at,
            acked_by=self.acked_by, ack_comment=self.ack_comment,
        )

    @staticmethod
    def from_row(row: AlarmRow) -> Alarm:
        return Alarm(
            id=row.id or 0, rule_id=row.rule_id, kind=row.kind, severity=Severity(row.severity),
            message=row.message, endpoint_id=row.endpoint_id, node=row.node, value=row.value,
            raised_at=row.raised_at, active=row.active, acked=row.acked, cleared_at=row.cleared_at,
            acked_at=row.acked_at, acked_by=row.acked_by, ack_comment=row.ack_comment,
        )


class AlarmNotFound(KeyError):
    pass


class AlarmService:
    """Raises, clears and acknowledges alarms; publishes every transition."""

    def __init__(self, config: PlantConfig, bus: EventBus, db: Database) -> None:
        self.config = config
        self.bus = bus
        self.db = db
        self.rules_by_endpoint: dict[int, list[AlarmRule]] = {}
        for rule in config.alarms:
            self.rules_by_endpoint.setdefault(rule.endpoint, []).append(rule)
        self.current: dict[int, Alarm] = {}  # alarms not yet back to normal+acked
        self._by_key: dict[str, Alarm] = {}  # active alarm per condition key
        self._next_id = 1
        self._recent: OrderedDict[int, Alarm] = OrderedDict()  # newest transitions, ahead of the DB writer
        self.listeners: list[Callable[[Alarm, str], None]] = []

    def load(self) -> None:
        """Pick up alarms still standing from the previous run and continue their id sequence."""
        with self.db.session() as session:
            max_id = session.exec(select(func.max(AlarmRow.id))).one()
            self._next_id = (max_id or 0) + 1
            rows = session.exec(
                select(AlarmRow).where((AlarmRow.active == True) | (AlarmRow.acked == False))  # noqa: E712
            ).all()
        for row in rows:
            alarm = Alarm.from_row(row)
            self.current[alarm.id] = alarm
            if alarm.active:
                self._by_key[alarm.rule_id] = alarm

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, state: EndpointState) -> None:
        """Threshold rules for one endpoint. A value that is not GOOD freezes them (never clears)."""
        rules = self.rules_by_endpoint.get(state.endpoint_id)
        if not rules or state.quality is not Quality.GOOD or state.value is None:
            return
        value = float(state.value)
        endpoint = self.config.endpoint(state.endpoint_id)
        for rule in rules:
            if rule.high is not None:
                self._threshold(rule, f"{rule.id}:high", "threshold_high", value > rule.high,
                                value < rule.high - rule.deadband, value, rule.high, endpoint.unit)
            if rule.low is not None:
                self._threshold(rule, f"{rule.id}:low", "threshold_low", value < rule.low,
                                value > rule.low + rule.deadband, value, rule.low, endpoint.unit)

    def _threshold(self, rule: AlarmRule, key: str, kind: str, beyond: bool, clear: bool,
                   value: float, limit: float, unit: str) -> None:
        active = self._by_key.get(key)
        if active is None and beyond:
            message = rule.message.format(value=value, limit=limit, unit=unit)
            self.raise_alarm(key, kind, rule.severity, message, endpoint_id=rule.endpoint, value=value)
        elif active is not None and clear:
            self.clear(key)

    def raise_alarm(self, key: str, kind: str, severity: Severity, message: str, *,
                    endpoint_id: int | None = None, node: str | None = None, value: Any = None,
                    momentary: bool = False) -> Alarm:
        """Raise (or return the already-active) alarm for condition `key`.

        A momentary alarm (a blocked command) records an event that happened: it is born returned to
        normal and stays listed until acknowledged.
        """
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        if node is None and endpoint_id is not None and endpoint_id in self.config.endpoints_by_id:
            node = self.config.node_of(endpoint_id)
        now = utcnow()
        alarm = Alarm(id=self._next_id, rule_id=key, kind=kind, severity=severity, message=message,
                      endpoint_id=endpoint_id, node=node, value=value, raised_at=now)
        self._next_id += 1
        if momentary:
            alarm.active = False
            alarm.cleared_at = now
        else:
            self._by_key[key] = alarm
        self.current[alarm.id] = alarm
        self._changed(alarm, "raised", insert=True)
        return alarm

    def clear(self, key: str) -> None:
        alarm = self._by_key.pop(key, None)
        if alarm is None:
            return
        alarm.active = False
        alarm.cleared_at = utcnow()
        if alarm.acked:
            self.current.pop(alarm.id, None)
        self._changed(alarm, "cleared")

    def is_active(self, key: str) -> bool:
        return key in self._by_key

    def ack(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        alarm = self.current.get(alarm_id)
        if alarm is None:
            raise AlarmNotFound(alarm_id)
        if alarm.acked:
            return alarm
        alarm.acked = True
        alarm.acked_at = utcnow()
        alarm.acked_by = actor.user
        alarm.ack_comment = comment
        if not alarm.active:
            self.current.pop(alarm.id, None)
        self._changed(alarm, "acked")
        return alarm

    def _changed(self, alarm: Alarm, event: str, *, insert: bool = False) -> None:
        self._recent[alarm.id] = alarm
        self._recent.move_to_end(alarm.id)
        while len(self._recent) > 2000:
            self._recent.popitem(last=False)
        row = alarm.row()
        self.db.write_later(self._persist, row, insert)
        payload = {"type": ALARM, "event": event, **alarm.as_dict()}
        self.bus.publish(ALARM, payload, node=alarm.node)
        for listener in self.listeners:
            listener(alarm, event)

    def _persist(self, row: AlarmRow, insert: bool) -> None:
        with self.db.session() as session:
            if insert:
                session.add(row)
            else:
                session.merge(row)
            session.commit()

    # -- queries ---------------------------------------------------------------------------

    def standing(self) -> list[Alarm]:
        return sorted(self.current.values(), key=lambda a: a.id, reverse=True)

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
        """Alarms by derived state; `active` means everything not back to normal-and-acked."""
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
