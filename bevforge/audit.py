"""The audit journal: every operator action with who, station, when (UTC), what, old → new, result.

Append-only by construction: this module only ever inserts. Rows go through the DB writer thread
in order, so the journal's order is the order things happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge.domain import Actor, utcnow
from bevforge.journals import csv_text
from bevforge.messages import iso
from bevforge.store import audit_rows
from bevforge.store.tables import AuditRow, SiteAuditRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database

FIELDS = ("id", "time", "user", "role", "station", "action", "target", "old", "new", "result", "commandId", "detail")
SITE_FIELDS = ("site", *FIELDS)  # a site's audit journal at a central panel: `id` is the entry's id at the site


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: Actor, action: str, *, target: str | None = None, old: Any = None, new: Any = None,
               result: str = "ok", command_id: str | None = None, detail: str | None = None) -> None:
        self.db.write_later(self._insert, entry(actor, action, target=target, old=old, new=new, result=result,
                                                command_id=command_id, detail=detail))

    def _insert(self, row: AuditRow) -> None:
        audit_rows.append(self.db, row)  # a retry after a refused commit inserts a new row (audit_rows.fresh)

    async def query(self, *, since: datetime | None = None, until: datetime | None = None, user: str | None = None,
                    action: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        await self.db.barrier()

        def run() -> list[dict[str, Any]]:
            rows = audit_rows.newest(self.db, since=since, until=until, user=user, action=action, limit=limit)
            return [view(r) for r in rows]

        return await self.db.read(run)

    async def site_query(self, site: str, *, since: datetime | None = None, until: datetime | None = None,
                         user: str | None = None, action: str | None = None, limit: int = 1000
                         ) -> list[dict[str, Any]]:
        """A site's audit journal as a central panel has it (forwarded: docs/mqtt.md "Store-and-forward"),
        newest first, in the local journal's shape plus `site`."""
        def run() -> list[dict[str, Any]]:
            rows = audit_rows.site_newest(self.db, site, since=since, until=until, user=user, action=action,
                                          limit=limit)
            return [site_view(r) for r in rows]

        return await self.db.read(run)


def entry(actor: Actor, action: str, *, target: str | None = None, old: Any = None, new: Any = None,
          result: str = "ok", command_id: str | None = None, detail: str | None = None) -> AuditRow:
    """One audit row, for a caller that stores it in its own transaction (a command with its record)."""
    return AuditRow(time=utcnow(), user=actor.user, role=actor.role, station=actor.station, action=action,
                    target=target, old=old, new=new, result=result, command_id=command_id, detail=detail)


def view(row: AuditRow | SiteAuditRow) -> dict[str, Any]:
    return {"id": row.id, "time": iso(row.time), "user": row.user, "role": row.role, "station": row.station,
            "action": row.action, "target": row.target, "old": row.old, "new": row.new, "result": row.result,
            "commandId": row.command_id, "detail": row.detail}


def site_view(row: SiteAuditRow) -> dict[str, Any]:
    return {"site": row.site} | view(row) | {"id": row.site_id}


def to_csv(entries: list[dict[str, Any]], site: bool = False) -> str:
    return csv_text(SITE_FIELDS if site else FIELDS, entries)
