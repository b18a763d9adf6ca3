"""Reading the alarm service: standing and recent occurrences, the banner summary, the definitions.

Kept apart from the engine because these only look: the screens and REST routes ask them, nothing
here changes a point. Open occurrences and the newest transitions come from memory (ahead of the DB
writer); older ones from the database. The journal's history and statistics are `alarm_history.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import select

from bevforge import permissions
from bevforge.alarm_engine import AlarmEngine
from bevforge.alarm_points import Alarm
from bevforge.domain import Actor, Severity, iso
from bevforge.store import AlarmRow


class AlarmQueries(AlarmEngine):
    """Occurrences and definitions as the API and the screens list them.

    Every list takes the actor it is for (None: the whole plant, as the core itself sees it) and
    asks `permissions` what that actor may see, so REST, `/ws`, SSE and the screens list the same.
    """

    def standing(self, actor: Actor | None = None) -> list[Alarm]:
        alarms = sorted(self.current.values(), key=lambda a: a.id, reverse=True)
        return alarms if actor is None else permissions.visible_alarms(actor, self.config, alarms)

    def may_see(self, actor: Actor | None, alarm: Alarm) -> bool:
        return actor is None or permissions.may_see_alarm(actor, self.config, alarm)

    def key_filter(self, actor: Actor | None) -> Callable[[str], bool] | None:
        """Which alarm keys (`ruleId`s of the journal and statistics) `actor` sees; None: every one."""
        return None if actor is None else permissions.alarm_key_filter(actor, self.config, self.points)

    def summary(self, actor: Actor | None = None) -> dict[str, Any]:
        """Counts of what `actor` may see; `flood` is the plant-wide alarm-rate state, not a list."""
        counts = {s.value: 0 for s in Severity}
        standing = self.standing(actor)
        for alarm in standing:
            if alarm.point.annunciated and not alarm.point.acked:
                counts[alarm.severity.value] += 1
        first_out = self.flood_first_out if self.flood else None
        if first_out is not None and actor is not None and not permissions.sees_all_nodes(actor):
            alarm = self.current.get(first_out) or self._recent.get(first_out)
            if alarm is None or not self.may_see(actor, alarm):
                first_out = None
        return {"unacknowledged": counts, "standing": len(standing), "flood": self.flood,
                "firstOutAlarmId": first_out}

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

    async def query(self, state: str | None, limit: int = 200, actor: Actor | None = None) -> list[Alarm]:
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
        if actor is not None:
            alarms = permissions.visible_alarms(actor, self.config, alarms)
        return alarms[:limit]

    def definitions(self, actor: Actor | None = None) -> list[dict[str, Any]]:
        out = []
        sees = self.key_filter(actor)
        for point in self.points.values():
            if point.rule is None or point.momentary or (sees is not None and not sees(point.key)):
                continue
            out.append({"ruleId": point.key, "kind": point.kind, "endpointId": point.endpoint_id,
                        "node": point.node, "priority": point.priority.value, "latching": point.latching,
                        "state": point.state.display.value,
                        "shelved": point.state.shelf, "shelvedUntil": iso(point.state.shelved_until),
                        "outOfService": point.state.out_of_service, "suppressed": point.state.suppressed,
                        "chattering": point.chattering, "limits": self.limits_of(point),
                        "alarmId": point.occurrence.id if point.occurrence else None})
        return out
