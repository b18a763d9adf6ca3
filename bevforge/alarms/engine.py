"""The alarm engine: definitions and system conditions → ISA-18.2 points → occurrences.

This is the part of the alarm service that runs by itself: it evaluates readings against the
definitions, raises and clears system alarms (comms, trips, blocked commands), runs delays and shelf
expiry on a timer, watches floods and chattering, and is the one place a point changes state
(`apply_event`). The `AlarmRecorder` it is built with journals, stores and publishes what changed;
operator actions (`actions.py`) and queries (`queries.py`) are separate parts that are handed the
engine when the service is composed (`service.py`), and use only its public methods.

Bad or stale input freezes a point's evaluation: an alarm never clears because its input went bad.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import interlocks
from bevforge.alarms.points import Alarm, Point, apply_overrides, limits_of
from bevforge.alarms.rules import ConditionTracker
from bevforge.alarms.states import AlarmEvent, PointState, apply
from bevforge.config import PROCESS_KINDS, AlarmRule, PlantConfig
from bevforge.domain import Actor, EndpointState, Quality, Severity, utcnow
from bevforge.store import alarm_rows

if TYPE_CHECKING:
    from bevforge.alarms.recorder import AlarmRecorder
    from bevforge.audit import AuditLog
    from bevforge.store.writer import Database
from bevforge.tasks import repeat_every, stop_task

# Logged under the service's name, as before the split, so log filters set up for it keep working.
log = logging.getLogger("bevforge.alarms")

FLOOD_WINDOW_S = 600.0
FLOOD_COUNT = 10
CHATTER_WINDOW_S = 60.0
CHATTER_CYCLES = 3

# An action on a point that another BevForge owns (a site's alarm at a central panel): (the point, the event asked
# for, who asks, its fields: durationS, comment) → sent to the owner, returning what to audit ("sent to site …"),
# or raising a typed error (Unavailable) when the owner cannot be reached now. The owner's state comes back
# through `AlarmEngine.follow`.
RemoteAction = Callable[[Point, AlarmEvent, Actor, dict[str, Any]], str]


class AlarmEngine:
    """Raises and clears alarms from readings and conditions; hands every transition to its recorder."""

    def __init__(self, config: PlantConfig, db: Database, recorder: AlarmRecorder,
                 audit: AuditLog | None = None) -> None:
        self.config = config
        self.db = db
        self.recorder = recorder
        self.states: Mapping[int, EndpointState] = {}
        self.device_online: Mapping[str, bool] = {}
        self.points: dict[str, Point] = {}
        self._by_endpoint: dict[int, list[Point]] = {}
        self._suppression_inputs: dict[int, list[Point]] = {}
        self._system_defs: dict[tuple[str, str], AlarmRule] = {}
        for rule in config.alarms:
            if rule.kind in PROCESS_KINDS:
                self._add_point(self._process_point(rule, config))
            else:
                self._system_defs[(rule.kind, rule.device or rule.interlock or "")] = rule
        self.current: dict[int, Alarm] = {}  # open occurrences
        self._next_id = 1
        self._raises: deque[tuple[float, int]] = deque()
        self.flood_first_out: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.audit = audit
        # point kinds another BevForge owns → how an action on one is sent there (the runtime registers them)
        self.remote: dict[str, RemoteAction] = {}

    limits_of = staticmethod(limits_of)

    @staticmethod
    def _process_point(rule: AlarmRule, config: PlantConfig) -> Point:
        assert rule.endpoint is not None
        return Point(rule.id, rule.kind, rule.priority, rule.latching, rule.endpoint,
                     config.node_of(rule.endpoint), rule, ConditionTracker(rule))

    def _add_point(self, point: Point) -> None:
        assert point.rule is not None and point.endpoint_id is not None
        self.points[point.key] = point
        self._by_endpoint.setdefault(point.endpoint_id, []).append(point)
        for cond in point.rule.suppress_when:
            self._suppression_inputs.setdefault(cond.endpoint, []).append(point)

    def reconfigure(self, config: PlantConfig) -> None:
        """Take a reloaded config's alarm definitions (bevforge/reload.py), in one synchronous step.

        An unchanged definition keeps its point as it is: state, open occurrence, shelf, runtime
        limit changes, delay timers. A changed one is built from the file again but keeps its
        ISA-18.2 state and open occurrence (as a restart restores them), so an alarm standing before
        the reload still needs its ACK; its runtime limit changes are not carried over (the file's
        limits win until a restart restores the stored ones). A removed one with an occurrence that
        still stands becomes a plain point with no definition, as a restart leaves it, so it can still
        be acknowledged; one with nothing standing is dropped. System points (comms, trips, blocked
        commands) are untouched.
        """
        old_rules = {rule.id for rule in self.config.alarms if rule.kind in PROCESS_KINDS}
        old_points = {key: self.points.pop(key) for key in old_rules if key in self.points}
        self._by_endpoint, self._suppression_inputs, self._system_defs = {}, {}, {}
        self.config = config
        for rule in config.alarms:
            if rule.kind not in PROCESS_KINDS:
                self._system_defs[(rule.kind, rule.device or rule.interlock or "")] = rule
                continue
            old = old_points.pop(rule.id, None)
            if old is not None and old.rule == rule:
                self._add_point(old)
                continue
            point = self._process_point(rule, config)
            if old is not None:
                point.state, point.occurrence = old.state, old.occurrence
                point.activations, point.chattering = old.activations, old.chattering
                assert point.tracker is not None
                point.tracker.active = old.state.active
            self._add_point(point)
        for key, old in old_points.items():  # removed definitions
            if old.occurrence is not None and not old.occurrence.closed:
                old.rule, old.tracker = None, None
                self.points[key] = old

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Reopen occurrences left open by the last run; restore shelves, out-of-service and limits."""
        self._next_id, rows, settings = alarm_rows.load_open(self.db)
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
            apply_overrides(point, setting.overrides or {})

    def start(self) -> None:
        self._task = asyncio.create_task(self._timer(), name="alarm-timer")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _timer(self) -> None:
        """Delays and shelf expiry need time to pass without a new reading."""
        await repeat_every(0.25, lambda: self.tick(time.monotonic(), utcnow()), log, "alarm timer")

    def tick(self, now_s: float, now: datetime) -> None:
        for point in self.points.values():
            if point.tracker is not None and point.tracker.pending and not point.state.suppressed:
                event = point.tracker.tick(now_s)
                if event is not None:
                    self.apply_event(point, event)
            if point.state.shelf == "timed" and point.state.shelved_until and point.state.shelved_until <= now:
                self.apply_event(point, AlarmEvent.SHELF_EXPIRED)
                self.recorder.save_point(point, "system")

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
            if point.state.suppressed:
                continue  # not evaluated by design: after it ends, the on-delay starts from scratch
            reference = None
            if rule.setpoint is not None:
                ref = self.states.get(rule.setpoint)
                if ref is None or ref.quality is not Quality.GOOD or ref.value is None:
                    continue  # no trustworthy reference: freeze
                reference = float(ref.value)
            event = point.tracker.update(state.value, now_s, reference)
            if event is not None:
                self.apply_event(point, event, value=state.value)

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
        if hold == point.state.suppressed:
            return
        self.apply_event(point, AlarmEvent.SUPPRESS if hold else AlarmEvent.UNSUPPRESS)
        if hold and point.tracker is not None:
            # Suppressed by design: the condition is not evaluated while it lasts. A condition that was
            # true is let go, so when the suppression ends (a mash-in fills the tun) the alarm stays
            # silent until the value is really abnormal for the whole on-delay measured from then.
            point.tracker.reset()
            if point.state.active:
                self.apply_event(point, AlarmEvent.CONDITION_FALSE)

    def quality_changed(self, state: EndpointState, device: str | None) -> None:
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
        listed until acknowledged — unless its priority is `alert`, which is acknowledged by the system
        at once (pushed and journaled, never waiting for an operator).
        """
        point = self._system_point(key, kind, severity, endpoint_id, node, ref, momentary)
        if point.rule is not None and point.rule.message and "{" not in point.rule.message:
            message = f"{point.rule.message} — {message}"
        if point.state.active and point.occurrence is not None:
            return point.occurrence
        self.apply_event(point, AlarmEvent.CONDITION_TRUE, value=value, message=message)
        assert point.occurrence is not None
        alarm = point.occurrence
        if momentary:
            self.apply_event(point, AlarmEvent.CONDITION_FALSE)
        if point.priority is Severity.ALERT and point.state.active is False:
            self.apply_event(point, AlarmEvent.ACK)  # an alert asks nothing of anyone: journaled, shown, done
        return alarm

    def follow(self, key: str, kind: str, severity: Severity, message: str | None, remote: PointState, *,
               node: str | None = None, by: str = "system") -> None:
        """Bring the point `key`, owned by another BevForge (a site's alarm at a central panel), to the state it has
        there (`remote`: active, latched, shelf, out of service), each change through `apply_event`, journaled as
        `by`. What hides it (out of service, a shelf) is applied before a raise and what ends a hiding after a
        clear, so an alarm hidden there does not annunciate here on its way. Acknowledgements stay this panel's
        own. A point that shows nothing there and is not here is not made; `message` None keeps the one shown."""
        point = self.points.get(key)
        if point is None:
            if not (remote.active or remote.latched or remote.shelf is not None or remote.out_of_service):
                return
            point = self._system_point(key, kind, severity, None, node)
        if message is None and point.occurrence is not None:
            message = point.occurrence.message
        e = AlarmEvent
        if remote.out_of_service and not point.state.out_of_service:
            self.apply_event(point, e.REMOVE_FROM_SERVICE, message=message, by=by)
        until = remote.shelved_until if remote.shelf == "timed" else None
        if remote.shelf is not None and not remote.out_of_service and \
                (point.state.shelf, point.state.shelved_until) != ("timed" if until else "oneshot", until):
            if point.state.out_of_service:  # out of service here, shelved there: back in service first
                self.apply_event(point, e.RETURN_TO_SERVICE, message=message, by=by)
            self.apply_event(point, e.SHELVE, until=until, message=message, by=by)
        if not point.state.active and (remote.active or (remote.latched and not point.state.latched)):
            point.latching = remote.latched  # a latched alarm there latches here, so RESET is offered here too
            self.apply_event(point, e.CONDITION_TRUE, message=message, by=by)
        if point.state.active and not remote.active:
            self.apply_event(point, e.CONDITION_FALSE, message=message, by=by)
        if remote.shelf is None and point.state.shelf is not None:
            self.apply_event(point, e.UNSHELVE, message=message, by=by)
        if not remote.out_of_service and point.state.out_of_service:
            self.apply_event(point, e.RETURN_TO_SERVICE, message=message, by=by)
        if point.state.latched and not remote.latched and not point.state.active:
            self.apply_event(point, e.RESET, message=message, by=by)

    def clear(self, key: str) -> None:
        point = self.points.get(key)
        if point is not None and point.state.active:
            self.apply_event(point, AlarmEvent.CONDITION_FALSE)

    def is_active(self, key: str) -> bool:
        point = self.points.get(key)
        return point is not None and point.state.active

    # -- the one place a point changes ------------------------------------------------------------

    def apply_event(self, point: Point, event: AlarmEvent, *, value: Any = None, message: str | None = None,
                    actor: Actor | None = None, comment: str | None = None, until: datetime | None = None,
                    by: str = "system") -> list[str]:
        """The one place a point changes state: apply `event`, audit a person's action, journal, publish.
        `by` names who the journal shows when no person did it (the system, or the site a state came from)."""
        new_state, words = apply(point.state, event, latching=point.latching, until=until)
        if not words:
            return words
        user = actor.user if actor is not None else by
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
                self.recorder.journal(None, point, words, user, comment, value, message or "", now)
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
        self.recorder.journal(alarm, point, words, user, comment, alarm.value, alarm.message, now)
        self.recorder.publish(alarm, words[0])
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
                    self.recorder.publish(first, "first_out")
        else:
            self.flood_first_out = None
        point.activations.append(now_s)
        while point.activations and now_s - point.activations[0] > CHATTER_WINDOW_S:
            point.activations.popleft()
        was = point.chattering
        point.chattering = len(point.activations) >= CHATTER_CYCLES
        alarm.chattering = point.chattering
        if point.chattering and not was:
            self.recorder.journal(alarm, point, ["chattering"], "system", None, None, alarm.message, utcnow())

    @property
    def flood(self) -> bool:
        now_s = time.monotonic()
        return sum(1 for t, _ in self._raises if now_s - t <= FLOOD_WINDOW_S) > FLOOD_COUNT
