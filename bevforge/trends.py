"""Multi-pen trends in the core: which pens a vessel's view holds, saved views, and the markers.

The /trends screen (ui/trends.py) draws; this module decides:

- **Vessel views.** For every node of the config a default view, built from the config alone: the
  node's temperature endpoints, its setpoint endpoints, and for each controller on the node its
  setpoint and its `output_record` (the loop's output %). So "MLT" on the shipped brewhouse is
  MLT temperature, the RIMS setpoint and the RIMS output — the PV, SP and output of one loop.
- **Saved views.** A user saves a named set of pens and a time span for themselves ("mine"); an
  operator (or above) may save one for everybody ("shared"). Saving a name again replaces that
  view. Shared views are audited (`trend.view.save`, `trend.view.delete`); a user's own are not,
  as they change nothing anyone else sees. A viewer may keep views of their own. At most
  `MAX_VIEWS` per user, and as many shared ones.
- **Markers.** Commands to the pens' endpoints (from the command record: who, what, the result)
  and the alarm journal's transitions of alarms about the pens' endpoints (raised, cleared,
  acked…), in the shown range. Program steps will join them when programs exist.

Everything goes through `permissions`: a node-limited user gets only their nodes' pens, views and
markers; a pen of a node they may not see is dropped from a saved view as if it were not there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bevforge import permissions
from bevforge.commands.record import shown_value
from bevforge.config import EndpointKind, PlantConfig
from bevforge.domain import Actor, utcnow
from bevforge.errors import INVALID_NAME, UNKNOWN_ENDPOINT, Invalid, NotFound, TooLarge
from bevforge.store import command_rows, trend_rows
from bevforge.store.tables import TrendViewRow

if TYPE_CHECKING:
    from bevforge.alarms.service import AlarmService
    from bevforge.audit import AuditLog
    from bevforge.store.writer import Database

MAX_PENS = 8  # beyond this the chart is unreadable on a kiosk, and each pen is one bucketed query
MAX_NAME = 60
MIN_SPAN_S, MAX_SPAN_S = 60.0, 31 * 24 * 3600.0
MAX_VIEWS = 50  # per user, and shared ones: a picker longer than this is not a picker
MAX_MARKERS = 500  # per kind and range: a chart with more is a wall of lines, not information
VESSEL_KINDS = (EndpointKind.TEMPERATURE, EndpointKind.SETPOINT)


@dataclass(frozen=True, slots=True)
class TrendLayout:
    """A set of pens and a time span, as the view picker lists it.

    `scope` is `vessel` (built from the config), `mine` (the user's own) or `shared`; `id` is the
    stored view's id (None for a vessel view, whose `key` is its node id).
    """

    key: str
    name: str
    pens: list[int]
    span_s: float = 3600.0
    scope: str = "vessel"
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    """One event on the time axis: a command or an alarm transition, with the words its tooltip shows."""

    kind: str  # "command" | "alarm"
    time: datetime
    endpoint_id: int | None
    title: str  # short: "SET 68 °C", "raised"
    text: str  # the tooltip: who, what, result
    extra: dict[str, Any] = field(default_factory=dict)


def vessel_views(config: PlantConfig, actor: Actor) -> list[TrendLayout]:
    """A default view per node (in config order) of the pens `actor` may see; a node with none is left out."""
    views = []
    for node in config.nodes:
        pens = [e.id for e in config.endpoints if e.node == node.id and e.kind in VESSEL_KINDS]
        for controller in config.controllers:
            if controller.node != node.id:
                continue
            made = [controller.setpoint_id] + ([controller.output_record.id] if controller.output_record else [])
            pens += [eid for eid in made if eid not in pens]
        pens = [eid for eid in pens if permissions.may_see_endpoint(actor, config.endpoint(eid))]
        if pens:
            views.append(TrendLayout(key=node.id, name=node.id, pens=pens[:MAX_PENS]))
    return views


class TrendViews:
    """The views a user may pick (vessel, shared, their own) and saving / deleting their own or shared ones."""

    def __init__(self, config: PlantConfig, db: Database, audit: AuditLog | None,
                 alarms: AlarmService | None = None) -> None:
        self.config = config
        self.db = db
        self.audit = audit
        self.alarms = alarms

    # -- views ---------------------------------------------------------------------------------

    def _visible_pens(self, actor: Actor | None, pens: Any) -> list[int]:
        by_id = self.config.endpoints_by_id
        return [eid for eid in (pens or []) if isinstance(eid, int) and eid in by_id
                and permissions.may_see_endpoint(actor, by_id[eid])]

    def _layout(self, actor: Actor | None, row: TrendViewRow) -> TrendLayout | None:
        pens = self._visible_pens(actor, row.pens)
        if not pens or row.id is None:
            return None
        scope = "shared" if row.owner is None else "mine"
        return TrendLayout(key=f"{scope}:{row.id}", name=row.name, pens=pens, span_s=row.span_s, scope=scope,
                           id=row.id)

    async def views(self, actor: Actor) -> list[TrendLayout]:
        """Vessel views, then shared views, then the user's own; each with the pens `actor` may see."""
        rows = await self.db.read(trend_rows.visible, self.db, actor.user)
        saved = [layout for row in rows if (layout := self._layout(actor, row)) is not None]
        return vessel_views(self.config, actor) + saved

    def check_pens(self, actor: Actor, pens: list[int]) -> list[int]:
        """The pens as given, if each is an endpoint `actor` may see; at most MAX_PENS, no repeats."""
        if not pens:
            raise Invalid("a view needs at least one pen", field="pens")
        if len(pens) > MAX_PENS:
            raise Invalid(f"a view holds at most {MAX_PENS} pens", field="pens")
        for eid in pens:
            if not isinstance(eid, int) or isinstance(eid, bool):
                raise Invalid(f"no endpoint with id {eid!r}", code=UNKNOWN_ENDPOINT, field="pens")
            permissions.require_endpoint(actor, self.config.endpoints_by_id.get(eid), eid, "pens")
        return list(dict.fromkeys(pens))

    async def save(self, actor: Actor, name: str, pens: list[int], span_s: float, shared: bool = False) -> TrendLayout:
        """Store a view for `actor` (or, `shared`, for everybody: operator or above, audited)."""
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise Invalid(f"a view's name is 1 to {MAX_NAME} characters", code=INVALID_NAME, field="name")
        if not MIN_SPAN_S <= span_s <= MAX_SPAN_S:
            raise Invalid(f"span_s must lie between {MIN_SPAN_S:g} and {MAX_SPAN_S:g}", field="span_s")
        pens = self.check_pens(actor, pens)
        if shared:
            permissions.require_role(actor, permissions.OPERATOR)
        row = TrendViewRow(name=name, owner=None if shared else actor.user, pens=pens, span_s=float(span_s),
                           updated_at=utcnow(), updated_by=actor.user)
        stored = await self.db.write(trend_rows.save, self.db, row, MAX_VIEWS)
        if stored is None:
            whose = "shared views" if shared else f"views of {actor.user}"
            raise TooLarge(f"there are already {MAX_VIEWS} {whose}: delete one, or save under a name in use",
                           field="name")
        if shared and self.audit is not None:
            self.audit.record(actor, "trend.view.save", target=name, new={"pens": pens, "spanS": span_s})
        layout = self._layout(actor, stored)
        assert layout is not None
        return layout

    async def delete(self, actor: Actor, view_id: int) -> None:
        """Delete one of `actor`'s own views, or a shared one (operator or above, audited)."""
        row = await self.db.read(trend_rows.get, self.db, view_id)
        if row is None or (row.owner is not None and row.owner != actor.user):
            raise NotFound(f"no trend view {view_id}", field="id")
        if row.owner is None:
            permissions.require_role(actor, permissions.OPERATOR)
        await self.db.write(trend_rows.delete, self.db, view_id)
        if row.owner is None and self.audit is not None:
            self.audit.record(actor, "trend.view.delete", target=row.name, old={"pens": row.pens})

    # -- markers -------------------------------------------------------------------------------

    async def markers(self, actor: Actor, pens: list[int], since: datetime, until: datetime) -> list[Marker]:
        """Command and alarm markers of the pens `actor` may see between `since` and `until`, in time order."""
        pens = self._visible_pens(actor, pens)
        if not pens:
            return []
        since, until = _utc(since), _utc(until)
        rows = await self.db.read(command_rows.in_range, self.db, pens, since, until, MAX_MARKERS)
        out = [self._command_marker(row) for row in rows]
        if self.alarms is not None:
            out += await self._alarm_markers(actor, set(pens), since, until)
        return sorted(out, key=lambda m: m.time)

    def _command_marker(self, row: Any) -> Marker:
        endpoint = self.config.endpoints_by_id[row.endpoint_id]
        value = shown_value(row.requested_value)
        unit = f" {endpoint.unit}" if endpoint.unit and not isinstance(row.requested_value, bool) else ""
        error = row.error or ""
        result = error if error.startswith(row.status) else f"{row.status}: {error}" if error else row.status
        return Marker("command", _utc(row.created_at), row.endpoint_id, f"{value}{unit}",
                      f"{row.user} set {endpoint.display_name} to {value}{unit}: {result}",
                      {"user": row.user, "status": row.status, "commandId": row.id})

    async def _alarm_markers(self, actor: Actor, pens: set[int], since: datetime, until: datetime) -> list[Marker]:
        assert self.alarms is not None
        points = self.alarms.points
        entries = await self.alarms.queries.journal(actor, since=since, until=until, limit=MAX_MARKERS)
        out = []
        for entry in reversed(entries):  # the journal is newest first: in the order they happened, so a raise and its
            point = points.get(entry["ruleId"])  # ack in the same millisecond keep that order through the time sort
            if point is None or point.endpoint_id not in pens:
                continue
            who = "" if entry["user"] in (None, "system") else f" by {entry['user']}"
            out.append(Marker("alarm", datetime.fromisoformat(entry["time"].replace("Z", "+00:00")),
                              point.endpoint_id, entry["event"],
                              f"{entry['priority']} alarm {entry['event']}{who}"
                              + (f": {entry['message']}" if entry["message"] else ""),
                              {"ruleId": entry["ruleId"], "event": entry["event"], "alarmId": entry["alarmId"]}))
        return out


def _utc(ts: datetime) -> datetime:
    """Aware UTC: the database hands back naive UTC times; a marker list sorts aware ones."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
