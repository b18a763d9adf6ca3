"""The store: SQL tables, the engine, the one writer, and the read-side queries.

- `tables` — the SQLModel tables (internal);
- `engine` — engine, schema, start-up clean-up (internal);
- `writer` — `Database` (the engine plus the one writer thread every write goes through) and the
  batched telemetry `HistoryWriter` (internal);
- `queries` — the read side the API and the screens use (public);
- `faults` — what a store that cannot be written means: `StoreUnavailable` (503), the store's
  health the store alarm follows, held background writes, SQLite without mmap (internal, but the
  core's services import `StoreUnavailable` and the store alarm's key from it).
- `auth_rows`, `audit_rows`, `alarm_rows`, `batch_rows`, `command_rows`, `controller_rows`, `program_rows`,
  `recipe_rows`, `retention_rows`, `trend_rows`, `journal_queries` — each service's rows, read and written (for
  the core's services: auth, audit, alarms, the batch record, commands, controllers, programs, recipe drafts,
  retention, the saved trend views, the journals). A service keeps its rules and calls these; no SQL lives
  outside the store
  (tests/unit/test_sql_home.py).

The API (`bevforge.api`) and the screens (`ui`) import only `bevforge.store.queries`; the
import-linter contracts in pyproject.toml fail `make test` otherwise. The core's services import the
names below from `bevforge.store`, which keeps every name that lived in the old `store.py` importable.
"""

from __future__ import annotations

from bevforge.store.engine import (
    create_schema,
    default_db_url,
    fail_interrupted_commands,
    integrity_ok,
    make_engine,
    sync_endpoints,
)
from bevforge.store.tables import (
    SCHEMA_VERSION,
    AlarmJournalRow,
    AlarmPointRow,
    AlarmRow,
    AuditRow,
    AuthChangeRow,
    BatchRow,
    BatchStepRow,
    CommandRow,
    ControllerRow,
    EndpointCurrent,
    EndpointRow,
    ProgramRow,
    RecipeDraftRow,
    SchemaVersion,
    SessionRow,
    TelemetryReading,
    TelemetryRollup,
    TokenRow,
    UserRow,
)
from bevforge.store.writer import Database, HistoryWriter

__all__ = [
    "SCHEMA_VERSION",
    "AlarmJournalRow",
    "AlarmPointRow",
    "AlarmRow",
    "AuditRow",
    "AuthChangeRow",
    "BatchRow",
    "BatchStepRow",
    "CommandRow",
    "ControllerRow",
    "Database",
    "EndpointCurrent",
    "EndpointRow",
    "HistoryWriter",
    "ProgramRow",
    "RecipeDraftRow",
    "SchemaVersion",
    "SessionRow",
    "TelemetryReading",
    "TelemetryRollup",
    "TokenRow",
    "UserRow",
    "create_schema",
    "default_db_url",
    "fail_interrupted_commands",
    "integrity_ok",
    "make_engine",
    "sync_endpoints",
]
