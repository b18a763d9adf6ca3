"""What an alarm point and an alarm occurrence are, and how they are stored.

Kept apart from the service so the screens, the REST routes and the engine share one shape of an
alarm without importing the machinery that evaluates it. A *point* (`Point`) is one definition from
config.yaml or one system condition, with its ISA-18.2 runtime state; an *occurrence* (`Alarm`, the
seed's `alarmId`) is one trip of a point from abnormal until it closes. The limit overrides a
technician makes at runtime live here too, because both loading and changing them touch a point.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import messages
from bevforge.alarms.states import DisplayState, PointState
from bevforge.domain import Severity
from bevforge.errors import UNKNOWN_ALARM, NotFound
from bevforge.store.tables import AlarmPointRow, AlarmRow

if TYPE_CHECKING:
    from bevforge.alarms.rules import ConditionTracker
    from bevforge.config import AlarmRule

STATES = tuple(s.value for s in DisplayState)


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
        return messages.alarm_view(self)

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


class AlarmNotFound(NotFound, KeyError):
    """No such alarm occurrence or definition (404); a KeyError too, for callers that test for one."""

    code = UNKNOWN_ALARM

    def __init__(self, key: object) -> None:
        super().__init__(f"no alarm {key!r}", field=None)
        self.key = key

    def __str__(self) -> str:
        return self.message


def limits_of(point: Point) -> dict[str, Any]:
    """The limits a technician may change on `point`, as shown and as stored."""
    tracker = point.tracker
    if tracker is None or point.rule is None:
        return {"priority": point.priority.value}
    return {"limit": tracker.limit, "deadband": tracker.deadband, "on_delay_s": point.rule.on_delay_s,
            "off_delay_s": point.rule.off_delay_s, "priority": point.priority.value}


def apply_overrides(point: Point, overrides: dict[str, Any]) -> None:
    """Put runtime limit changes (from the technician, or restored at start-up) onto `point`."""
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


def settings_row(point: Point, user: str, now: datetime) -> AlarmPointRow:
    """What survives a restart of `point`: shelf, out-of-service and limit overrides."""
    overrides = limits_of(point) if point.tracker is not None else None
    return AlarmPointRow(rule_id=point.key, shelf=point.state.shelf, shelved_until=point.state.shelved_until,
                         out_of_service=point.state.out_of_service, overrides=overrides, updated_at=now,
                         updated_by=user)
