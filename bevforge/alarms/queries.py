"""Reading the alarm service: standing and recent occurrences, the banner summary, the definitions.

Kept apart from the engine because these only look: the screens and REST routes ask them, nothing
here changes a point. Open occurrences and the newest transitions come from memory (ahead of the DB
writer); older ones from the database. The journal's history and statistics are `history.py`.
The engine (open occurrences, points) and the recorder (newest transitions) are handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import permissions
from bevforge.alarms.history import history as journal_history
from bevforge.alarms.history import site_history
from bevforge.alarms.history import statistics as journal_statistics
from bevforge.alarms.points import Alarm, AlarmNotFound, Point, limits_of
from bevforge.domain import Actor, Severity
from bevforge.messages import iso
from bevforge.store import alarm_rows
from bevforge.store.tables import AlarmRow

if TYPE_CHECKING:
    from bevforge.alarms.engine import AlarmEngine
    from bevforge.alarms.recorder import AlarmRecorder
    from bevforge.store.writer import Database


class AlarmQueries:
    """Occurrences and definitions as the API and the screens list them.

    Every list takes the actor it is for (None: the whole plant, as the core itself sees it) and
    asks `permissions` what that actor may see, so REST, `/ws`, SSE and the screens list the same.
    """

    def __init__(self, engine: AlarmEngine, recorder: AlarmRecorder, db: Database) -> None:
        self.engine = engine
        self.recorder = recorder
        self.db = db

    def standing(self, actor: Actor | None = None) -> list[Alarm]:
        alarms = sorted(self.engine.current.values(), key=lambda a: a.id, reverse=True)
        return alarms if actor is None else permissions.visible_alarms(actor, self.engine.config, alarms)

    def may_see(self, actor: Actor | None, alarm: Alarm) -> bool:
        return actor is None or permissions.may_see_alarm(actor, self.engine.config, alarm)

    def key_filter(self, actor: Actor | None) -> Callable[[str], bool] | None:
        """Which alarm keys (`ruleId`s of the journal and statistics) `actor` sees; None: every one."""
        return None if actor is None else permissions.alarm_key_filter(actor, self.engine.config, self.engine.points)

    def summary(self, actor: Actor | None = None) -> dict[str, Any]:
        """Counts of what `actor` may see; `flood` is the plant-wide alarm-rate state, not a list."""
        counts = {s.value: 0 for s in Severity}
        standing = self.standing(actor)
        for alarm in standing:
            if alarm.point.annunciated and not alarm.point.acked:
                counts[alarm.severity.value] += 1
        flood = self.engine.flood
        first_out = self.engine.flood_first_out if flood else None
        if first_out is not None and actor is not None and not permissions.sees_all_nodes(actor):
            alarm = self.engine.current.get(first_out) or self.recorder.recent.get(first_out)
            if alarm is None or not self.may_see(actor, alarm):
                first_out = None
        return {"unacknowledged": counts, "standing": len(standing), "flood": flood,
                "firstOutAlarmId": first_out}

    async def get(self, alarm_id: int) -> Alarm | None:
        alarm = self.engine.current.get(alarm_id) or self.recorder.recent.get(alarm_id)
        if alarm is not None:
            return alarm
        row = await self.db.read(self._fetch_one, alarm_id)
        return Alarm.from_row(row) if row else None

    def _fetch_one(self, alarm_id: int) -> AlarmRow | None:
        return alarm_rows.get(self.db, alarm_id)

    def _fetch_recent(self, limit: int) -> list[AlarmRow]:
        return alarm_rows.newest(self.db, limit)

    async def query(self, state: str | None, limit: int = 200, actor: Actor | None = None) -> list[Alarm]:
        """Occurrences by display state; `active` (default) means every open occurrence."""
        if state in (None, "active"):
            alarms = self.standing()
        else:
            rows = await self.db.read(self._fetch_recent, limit * 5)
            merged = {r.id: Alarm.from_row(r) for r in rows}
            merged.update(self.recorder.recent)
            merged.update(self.engine.current)
            alarms = sorted(merged.values(), key=lambda a: a.id, reverse=True)
            if state != "all":
                alarms = [a for a in alarms if a.state == state]
        if actor is not None:
            alarms = permissions.visible_alarms(actor, self.engine.config, alarms)
        return alarms[:limit]

    def definitions(self, actor: Actor | None = None) -> list[dict[str, Any]]:
        sees = self.key_filter(actor)
        return [self._definition_view(point) for point in self.engine.points.values()
                if point.rule is not None and not point.momentary and (sees is None or sees(point.key))]

    def definition(self, rule_id: str) -> dict[str, Any]:
        """One point as GET /definitions shows a definition, also one with no definition here (a site's alarm at
        a central panel): what a change answers with."""
        point = self.engine.points.get(rule_id)
        if point is None:
            raise AlarmNotFound(rule_id)
        return self._definition_view(point)

    def _definition_view(self, point: Point) -> dict[str, Any]:
        return {"ruleId": point.key, "kind": point.kind, "endpointId": point.endpoint_id,
                "node": point.node, "priority": point.priority.value, "latching": point.latching,
                "state": point.state.display.value,
                "shelved": point.state.shelf, "shelvedUntil": iso(point.state.shelved_until),
                "outOfService": point.state.out_of_service, "suppressed": point.state.suppressed,
                "chattering": point.chattering, "limits": limits_of(point),
                "alarmId": point.occurrence.id if point.occurrence else None,
                # owned by another BevForge (a site): an action was sent there, and this state follows its answer
                "remote": point.kind in self.engine.remote}

    async def journal(self, actor: Actor | None = None, *, since: datetime | None = None,
                      until: datetime | None = None, rule_id: str | None = None, event: str | None = None,
                      alarm_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The alarm journal, newest first, with every transition queued before the question; only the
        entries of alarms `actor` may see (None: all)."""
        await self.db.barrier()
        entries = await self.db.read(lambda: journal_history(self.db, since=since, until=until, rule_id=rule_id,
                                                             event=event, alarm_id=alarm_id, limit=limit))
        visible = self.key_filter(actor)
        return entries if visible is None else [e for e in entries if visible(e["ruleId"])]

    async def site_journal(self, actor: Actor | None, site: str, *, since: datetime | None = None,
                           until: datetime | None = None, rule_id: str | None = None, event: str | None = None,
                           alarm_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """A forwarding site's alarm journal, newest first; only the entries on this panel's nodes `actor` may
        see (`permissions.visible_site_journal`)."""
        entries = await self.db.read(lambda: site_history(self.db, site, since=since, until=until, rule_id=rule_id,
                                                          event=event, alarm_id=alarm_id, limit=limit))
        return entries if actor is None else permissions.visible_site_journal(actor, entries)

    async def statistics(self, actor: Actor | None = None) -> dict[str, Any]:
        """The technician's alarm load statistics (`history.statistics`) over the alarms `actor` may see,
        chattering points from memory."""
        chattering = [p.key for p in self.engine.points.values() if p.chattering]
        await self.db.barrier()
        return await self.db.read(journal_statistics, self.db, chattering, None, self.key_filter(actor))
