"""What an operator or technician does to alarms: acknowledge, reset, shelve, take out of service, change limits.

Kept apart from the engine because every one of these is a person's decision: it goes through the
same state machine (`_event`) but names the actor, leaves an audit record, and, for the settings of
a definition (shelf, out-of-service, limits), is persisted so it survives a restart.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bevforge.alarm_engine import AlarmEngine
from bevforge.alarm_points import Alarm, AlarmNotFound, Point, apply_overrides
from bevforge.alarm_states import AlarmEvent, TransitionRefused
from bevforge.domain import Actor, utcnow


class AlarmActions(AlarmEngine):
    """Operator actions on occurrences and definitions; each one audited and journalled.

    Refused whole (`StoreUnavailable`) while the store cannot be written: an acknowledgement that
    could not be journalled would be a decision with no record.
    """

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
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        alarm = point.occurrence
        assert alarm is not None
        if not point.state.acked:
            self._event(point, AlarmEvent.ACK, actor=actor, comment=comment)
        return alarm

    def reset(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        point = self._point_of(alarm_id)
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        alarm = point.occurrence
        assert alarm is not None
        self._event(point, AlarmEvent.RESET, actor=actor, comment=comment)
        return alarm

    def shelve(self, rule_id: str, actor: Actor, duration_s: float | None, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        until = utcnow() + timedelta(seconds=duration_s) if duration_s else None
        self._event(point, AlarmEvent.SHELVE, actor=actor, comment=comment, until=until)
        self._save_point(point, actor.user)
        return point

    def unshelve(self, rule_id: str, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        self._event(point, AlarmEvent.UNSHELVE, actor=actor, comment=comment)
        self._save_point(point, actor.user)
        return point

    def set_in_service(self, rule_id: str, in_service: bool, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id)
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        event = AlarmEvent.RETURN_TO_SERVICE if in_service else AlarmEvent.REMOVE_FROM_SERVICE
        self._event(point, event, actor=actor, comment=comment)
        self._save_point(point, actor.user)
        return point

    def change_limits(self, rule_id: str, changes: dict[str, Any], actor: Actor) -> tuple[dict[str, Any], Point]:
        """Technician changes limits at runtime; persisted and journalled with old → new."""
        point = self._definition(rule_id)
        self.db.health.require_writable()  # its record is written later: refuse it whole now
        if point.tracker is None:
            raise TransitionRefused("this alarm has no limits")
        old = self.limits_of(point)
        apply_overrides(point, changes)
        self._save_point(point, actor.user)
        new = self.limits_of(point)
        if self.audit is not None:
            self.audit.record(actor, "alarm.limits", target=rule_id, old=old, new=new)
        self._journal(point.occurrence, point, ["limits_changed"], actor.user, f"{old} → {new}", None,
                      f"limits of {rule_id} changed", utcnow())
        return old, point

    def _definition(self, rule_id: str) -> Point:
        point = self.points.get(rule_id)
        if point is None or point.momentary:
            raise AlarmNotFound(rule_id)
        return point
