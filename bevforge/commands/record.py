"""The record of a command: its shape, its stored row, and finding it again.

Kept apart from the pipeline so the screens and `/ws` share one `Command` type without the
machinery that runs it, and so the lookups (by id, by endpoint and status) read as what they are:
the newest commands from memory, the rest from the database. What memory holds is each command as
it was last stored (the runner hands it over once the write is committed), so a lookup, a snapshot
or an idempotent repeat never shows a status the database does not have yet.
A command's audit rows are written in the same transaction as the command row they describe, so
the record and the audit journal can never disagree after a crash (the SQL: `store.command_rows`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import messages
from bevforge.domain import CommandStatus, Value
from bevforge.store import command_rows
from bevforge.store.tables import AuditRow, CommandRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database

RECENT_KEPT = 10_000


@dataclass(slots=True)
class Command:
    id: str
    endpoint_id: int
    requested_value: Value
    status: CommandStatus
    user: str
    station: str
    origin: str
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    completed_at: datetime | None = None
    actual_value: Value | None = None
    error: str | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return messages.command_view(self)

    def row(self) -> CommandRow:
        return CommandRow(
            id=self.id, endpoint_id=self.endpoint_id, requested_value=self.requested_value,
            actual_value=self.actual_value, status=self.status.value, error=self.error,
            reasons=self.reasons or None, user=self.user, station=self.station, origin=self.origin,
            created_at=self.created_at, queued_at=self.queued_at, sent_at=self.sent_at,
            acked_at=self.acked_at, completed_at=self.completed_at, updated_at=self.updated_at,
        )

    @staticmethod
    def from_row(row: CommandRow) -> Command:
        return Command(
            id=row.id, endpoint_id=row.endpoint_id, requested_value=row.requested_value,
            status=CommandStatus(row.status), user=row.user, station=row.station, origin=row.origin,
            created_at=row.created_at, updated_at=row.updated_at, queued_at=row.queued_at,
            sent_at=row.sent_at, acked_at=row.acked_at, completed_at=row.completed_at,
            actual_value=row.actual_value, error=row.error, reasons=row.reasons or [],
        )


class CommandLog:
    """Stores commands (inserted once, then updated at each transition) and finds them again."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._recent: OrderedDict[str, Command] = OrderedDict()

    def remember(self, command: Command) -> None:
        """Keep `command` (as stored) in memory so lookups need not ask the database."""
        self._recent[command.id] = command
        while len(self._recent) > RECENT_KEPT:
            self._recent.popitem(last=False)

    def insert(self, row: CommandRow, audit: AuditRow | None = None) -> None:
        """Store a new command and its audit row in one transaction (runs on the writer thread)."""
        command_rows.insert(self.db, row, audit)

    def update(self, row: CommandRow, audit: AuditRow | None = None) -> None:
        """Store a transition, with the audit row of a final one, in one transaction (writer thread)."""
        command_rows.update(self.db, row, audit)

    # -- lookups ---------------------------------------------------------------------------

    def stored(self, command_id: str) -> Command | None:
        """The newest commands as last stored, from memory only (None: not among them)."""
        return self._recent.get(command_id)

    async def find(self, command_id: str) -> Command | None:
        command = self._recent.get(command_id)
        if command is not None:
            return command
        row = await self.db.read(self._fetch, command_id)
        return Command.from_row(row) if row is not None else None

    def _fetch(self, command_id: str) -> CommandRow | None:
        return command_rows.get(self.db, command_id)

    async def query(self, endpoint_id: int | None, status: CommandStatus | None, limit: int) -> list[Command]:
        rows = await self.db.read(self._query, endpoint_id, status, limit)
        commands = [self._recent.get(r.id) or Command.from_row(r) for r in rows]
        return commands

    def _query(self, endpoint_id: int | None, status: CommandStatus | None, limit: int) -> list[CommandRow]:
        return command_rows.newest(self.db, endpoint_id, status.value if status is not None else None, limit)


def audit_value(value: Any) -> Any:
    """A value as the audit journal stores it (JSON scalars; anything else as text)."""
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def shown_value(value: Any) -> str:
    """A value in the operator's words for messages: ON/OFF for a switch, 72.5 not 72.500000."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
