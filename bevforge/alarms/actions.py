"""What an operator or technician does to alarms: acknowledge, reset, shelve, take out of service, change limits.

Kept apart from the engine because every one of these is a person's decision: it goes through the
same state machine (`AlarmEngine.apply_event`) but names the actor, leaves an audit record, and, for
the settings of a definition (shelf, out-of-service, limits), is persisted so it survives a restart.
The engine and the recorder are handed in when the service is composed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bevforge import permissions
from bevforge.alarms.points import Alarm, AlarmNotFound, Point, apply_overrides, limits_of
from bevforge.alarms.states import AlarmEvent, TransitionRefused
from bevforge.domain import Actor, utcnow
from bevforge.errors import BevForgeError

MAX_SHELF_S = 24 * 3600.0  # the longest timed shelf anyone may ask for (REST, MQTT); the roles' lists are shorter

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bevforge.alarms.engine import AlarmEngine
    from bevforge.alarms.recorder import AlarmRecorder


class AlarmActions:
    """Operator actions on occurrences and definitions; each one audited and journalled.

    Refused whole (`StoreUnavailable`) while the store cannot be written: an acknowledgement that
    could not be journalled would be a decision with no record.
    """

    def __init__(self, engine: AlarmEngine, recorder: AlarmRecorder,
                 shelve_policy: Mapping[str, Sequence[float]] | None = None) -> None:
        self.engine = engine
        self.recorder = recorder
        self.shelve_policy: Mapping[str, Sequence[float]] = shelve_policy or {}

    def _point_of(self, alarm_id: int, actor: Actor) -> Point:
        """The point of an open occurrence the actor may see; another node's looks closed (not found)."""
        alarm = self.engine.current.get(alarm_id)
        if alarm is None or not permissions.may_see_alarm(actor, self.engine.config, alarm):
            raise AlarmNotFound(alarm_id)
        point = self.engine.points.get(alarm.rule_id)
        if point is None or point.occurrence is not alarm:
            raise AlarmNotFound(alarm_id)
        return point

    def ack(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        point = self._point_of(alarm_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        alarm = point.occurrence
        assert alarm is not None
        if not point.state.acked:
            self.engine.apply_event(point, AlarmEvent.ACK, actor=actor, comment=comment)
        return alarm

    def reset(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        point = self._point_of(alarm_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        alarm = point.occurrence
        assert alarm is not None
        if not self._sent_to_owner(point, AlarmEvent.RESET, actor, {"comment": comment}):
            self.engine.apply_event(point, AlarmEvent.RESET, actor=actor, comment=comment)
        return alarm

    def shelve(self, rule_id: str, actor: Actor, duration_s: float | None, comment: str | None = None) -> Point:
        """Shelve `rule_id`: timed for one of the durations configured for the actor's role, else one-shot."""
        if duration_s is not None:
            permissions.require_shelve_duration(actor, duration_s, self.shelve_policy)
        point = self._definition(rule_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        if self._sent_to_owner(point, AlarmEvent.SHELVE, actor, {"durationS": duration_s, "comment": comment}):
            return point
        until = utcnow() + timedelta(seconds=duration_s) if duration_s else None
        self.engine.apply_event(point, AlarmEvent.SHELVE, actor=actor, comment=comment, until=until)
        self.recorder.save_point(point, actor.user)
        return point

    def unshelve(self, rule_id: str, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        if self._sent_to_owner(point, AlarmEvent.UNSHELVE, actor, {"comment": comment}):
            return point
        self.engine.apply_event(point, AlarmEvent.UNSHELVE, actor=actor, comment=comment)
        self.recorder.save_point(point, actor.user)
        return point

    def set_in_service(self, rule_id: str, in_service: bool, actor: Actor, comment: str | None = None) -> Point:
        point = self._definition(rule_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        event = AlarmEvent.RETURN_TO_SERVICE if in_service else AlarmEvent.REMOVE_FROM_SERVICE
        if self._sent_to_owner(point, event, actor, {"comment": comment}):
            return point
        self.engine.apply_event(point, event, actor=actor, comment=comment)
        self.recorder.save_point(point, actor.user)
        return point

    def _sent_to_owner(self, point: Point, event: AlarmEvent, actor: Actor, fields: dict[str, Any]) -> bool:
        """A point another BevForge owns (a site's alarm at a central panel) is not changed here: the action is
        sent to its owner, whose own alarm service decides, and this panel's point follows the state it then
        publishes (`AlarmEngine.follow`). Audited here either way; an owner that cannot be reached now refuses
        it whole (the typed error says so) and nothing changes. False: the point is this panel's own."""
        send = self.engine.remote.get(point.kind)
        if send is None:
            return False
        audit = self.engine.audit
        try:
            sent = send(point, event, actor, fields)
        except BevForgeError as exc:
            if audit is not None:
                audit.record(actor, f"alarm.{event.value}", target=point.key, old=point.state.display.value,
                             result="refused", detail=exc.message)
            raise
        if audit is not None:
            audit.record(actor, f"alarm.{event.value}", target=point.key, old=point.state.display.value,
                         result="sent", detail=sent + (f"; {fields['comment']}" if fields.get("comment") else ""))
        return True

    def change_limits(self, rule_id: str, changes: dict[str, Any], actor: Actor) -> tuple[dict[str, Any], Point]:
        """Technician changes limits at runtime; persisted and journalled with old → new."""
        point = self._definition(rule_id, actor)
        self.recorder.db.health.require_writable()  # its record is written later: refuse it whole now
        if point.tracker is None:
            raise TransitionRefused("this alarm has no limits")
        old = limits_of(point)
        apply_overrides(point, changes)
        self.recorder.save_point(point, actor.user)
        new = limits_of(point)
        if self.engine.audit is not None:
            self.engine.audit.record(actor, "alarm.limits", target=rule_id, old=old, new=new)
        self.recorder.journal(point.occurrence, point, ["limits_changed"], actor.user, f"{old} → {new}", None,
                      f"limits of {rule_id} changed", utcnow())
        return old, point

    def _definition(self, rule_id: str, actor: Actor) -> Point:
        point = self.engine.points.get(rule_id)
        if point is None or point.momentary or not permissions.may_see_nodes(
                actor, permissions.alarm_nodes(self.engine.config, rule_id, point.node, point.endpoint_id)):
            raise AlarmNotFound(rule_id)
        return point
