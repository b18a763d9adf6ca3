"""The alarm service: the one object the runtime, the API and the screens hold for alarms.

- A *point* is one definition from config.yaml (or a system condition: a device's comms, an
  interlock trip, a blocked command). It carries the runtime state (`states.PointState`).
- An *occurrence* (`Alarm`, the seed's `alarmId`) opens when the point becomes abnormal and closes
  when it is back to normal, acknowledged and (if latching) reset.

The service is composed at construction time from parts with one job each, each handed its
collaborators in `__init__`: the `AlarmRecorder` (journal, rows, bus), the `AlarmEngine`
(evaluation and the state of points; given the recorder), `AlarmActions` (operator actions; given
the engine and the recorder) and `AlarmQueries` (lists and summary; given the engine, the recorder
and the database). The service only forwards to them: no part calls another's private methods and
none inherits from another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge.alarms.actions import AlarmActions
from bevforge.alarms.engine import AlarmEngine, RemoteAction
from bevforge.alarms.points import Alarm, Point, limits_of
from bevforge.alarms.queries import AlarmQueries
from bevforge.alarms.recorder import AlarmRecorder

if TYPE_CHECKING:
    from bevforge.alarms.states import PointState
    from bevforge.audit import AuditLog
    from bevforge.bus import EventBus
    from bevforge.config import PlantConfig
    from bevforge.domain import Actor, EndpointState, Severity
    from bevforge.permissions import Owners
    from bevforge.store.writer import Database


class AlarmService:
    """Raises, clears, acknowledges, shelves, resets; publishes and journals every transition."""

    def __init__(self, config: PlantConfig, bus: EventBus, db: Database, audit: AuditLog | None = None) -> None:
        self.config = config
        self.bus = bus
        self.db = db
        self.recorder = AlarmRecorder(bus, db, config)
        self.engine = AlarmEngine(config, db, self.recorder, audit)
        self.actions = AlarmActions(self.engine, self.recorder, config.auth.shelve_durations_s)
        self.queries = AlarmQueries(self.engine, self.recorder, db)

    limits_of = staticmethod(limits_of)

    # -- what the plant hands in (the plant is built after the service) -----------------------

    @property
    def states(self) -> Mapping[int, EndpointState]:
        return self.engine.states

    @states.setter
    def states(self, states: Mapping[int, EndpointState]) -> None:
        self.engine.states = states

    @property
    def device_online(self) -> Mapping[str, bool]:
        return self.engine.device_online

    @device_online.setter
    def device_online(self, online: Mapping[str, bool]) -> None:
        self.engine.device_online = online

    @property
    def audit(self) -> AuditLog | None:
        return self.engine.audit

    @audit.setter
    def audit(self, audit: AuditLog | None) -> None:
        self.engine.audit = audit

    # -- the engine's state, as callers read it -----------------------------------------------

    @property
    def points(self) -> dict[str, Point]:
        return self.engine.points

    @property
    def current(self) -> dict[int, Alarm]:
        return self.engine.current

    @property
    def flood(self) -> bool:
        return self.engine.flood

    @property
    def flood_first_out(self) -> int | None:
        return self.engine.flood_first_out

    @property
    def listeners(self) -> list[Callable[[Alarm, str], None]]:
        return self.recorder.listeners

    @property
    def remote(self) -> dict[str, RemoteAction]:
        """Point kinds another BevForge owns (a site's alarms at a central panel) → how an action is sent there."""
        return self.engine.remote

    # -- the engine ---------------------------------------------------------------------------

    def load(self) -> None:
        self.engine.load()

    def reconfigure(self, config: PlantConfig) -> None:
        """A reloaded config (bevforge/reload.py): definitions replaced, unchanged ones keep their state."""
        self.config = config
        self.recorder.config = config
        self.engine.reconfigure(config)

    def start(self) -> None:
        self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    def tick(self, now_s: float, now: datetime) -> None:
        self.engine.tick(now_s, now)

    def evaluate(self, state: EndpointState) -> None:
        self.engine.evaluate(state)

    def quality_changed(self, state: EndpointState, device: str) -> None:
        self.engine.quality_changed(state, device)

    def raise_alarm(self, key: str, kind: str, severity: Severity, message: str, *,
                    endpoint_id: int | None = None, node: str | None = None, value: Any = None,
                    momentary: bool = False, ref: str | None = None) -> Alarm:
        return self.engine.raise_alarm(key, kind, severity, message, endpoint_id=endpoint_id, node=node,
                                       value=value, momentary=momentary, ref=ref)

    def clear(self, key: str) -> None:
        self.engine.clear(key)

    def follow(self, key: str, kind: str, severity: Severity, message: str | None, remote: PointState, *,
               node: str | None = None, by: str = "system") -> None:
        """A point another BevForge owns, brought to the state it has there (`AlarmEngine.follow`)."""
        self.engine.follow(key, kind, severity, message, remote, node=node, by=by)

    def clear_prefix(self, prefix: str) -> None:
        """Clear every raised condition whose key starts with `prefix` (a removed site's mirrored alarms)."""
        for key in [k for k in self.engine.points if k.startswith(prefix)]:
            self.engine.clear(key)

    def is_active(self, key: str) -> bool:
        return self.engine.is_active(key)

    # -- operator actions ---------------------------------------------------------------------

    def ack(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        return self.actions.ack(alarm_id, actor, comment)

    def reset(self, alarm_id: int, actor: Actor, comment: str | None = None) -> Alarm:
        return self.actions.reset(alarm_id, actor, comment)

    def shelve(self, rule_id: str, actor: Actor, duration_s: float | None, comment: str | None = None) -> Point:
        return self.actions.shelve(rule_id, actor, duration_s, comment)

    def unshelve(self, rule_id: str, actor: Actor, comment: str | None = None) -> Point:
        return self.actions.unshelve(rule_id, actor, comment)

    def set_in_service(self, rule_id: str, in_service: bool, actor: Actor, comment: str | None = None) -> Point:
        return self.actions.set_in_service(rule_id, in_service, actor, comment)

    def change_limits(self, rule_id: str, changes: dict[str, Any], actor: Actor) -> tuple[dict[str, Any], Point]:
        return self.actions.change_limits(rule_id, changes, actor)

    # -- queries ------------------------------------------------------------------------------

    # Every list takes the actor it is for (None: the whole plant, as the core sees it); what an
    # actor may see is `permissions`' answer, asked inside the parts.

    def standing(self, actor: Actor | None = None) -> list[Alarm]:
        return self.queries.standing(actor)

    def may_see(self, actor: Actor | None, alarm: Alarm) -> bool:
        return self.queries.may_see(actor, alarm)

    def key_filter(self, actor: Actor | None) -> Callable[[str], bool] | None:
        return self.queries.key_filter(actor)

    def owners(self, alarm: Alarm) -> Owners:
        """The nodes `alarm` belongs to, as the live feed files it (a device's alarm: its endpoints' nodes)."""
        return self.recorder.owners(alarm)

    def summary(self, actor: Actor | None = None) -> dict[str, Any]:
        return self.queries.summary(actor)

    async def get(self, alarm_id: int) -> Alarm | None:
        return await self.queries.get(alarm_id)

    async def query(self, state: str | None, limit: int = 200, actor: Actor | None = None) -> list[Alarm]:
        return await self.queries.query(state, limit, actor)

    def definitions(self, actor: Actor | None = None) -> list[dict[str, Any]]:
        return self.queries.definitions(actor)

    def definition(self, rule_id: str) -> dict[str, Any]:
        return self.queries.definition(rule_id)

    async def journal(self, actor: Actor | None = None, *, since: datetime | None = None,
                      until: datetime | None = None, rule_id: str | None = None, event: str | None = None,
                      alarm_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return await self.queries.journal(actor, since=since, until=until, rule_id=rule_id, event=event,
                                          alarm_id=alarm_id, limit=limit)

    async def site_journal(self, actor: Actor | None, site: str, *, since: datetime | None = None,
                           until: datetime | None = None, rule_id: str | None = None, event: str | None = None,
                           alarm_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return await self.queries.site_journal(actor, site, since=since, until=until, rule_id=rule_id, event=event,
                                               alarm_id=alarm_id, limit=limit)

    async def statistics(self, actor: Actor | None = None) -> dict[str, Any]:
        return await self.queries.statistics(actor)
