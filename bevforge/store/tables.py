"""The SQL tables of the plant (SQLModel): what is stored, one class per table.

Internal to the store: the API and the screens never import this module; they read through
`bevforge.store.queries` (the import-linter contracts in pyproject.toml say so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from bevforge.domain import utcnow

# The schema's generation, kept in `schema_version`: raised by a migration that changes what an older
# BevForge would misread (tables, columns), so that older code refuses the database. A migration that
# only adds indexes leaves it (an older BevForge reads the same rows). The migrations themselves are
# Alembic revisions in bevforge/store/migrations/versions/ (bevforge/store/migrate.py runs them).
SCHEMA_VERSION = 1

class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    applied_at: datetime = Field(default_factory=utcnow)


class EndpointRow(SQLModel, table=True):
    """The configured endpoints, mirrored so history stays readable after a config change."""

    __tablename__ = "endpoints"
    id: int = Field(primary_key=True)
    name: str
    node: str
    kind: str
    unit: str
    data_type: str
    writable: bool


class EndpointCurrent(SQLModel, table=True):
    __tablename__ = "endpoint_current"
    endpoint_id: int = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON))
    quality: str
    source_time: datetime | None = None
    server_time: datetime | None = None


class TelemetryReading(SQLModel, table=True):
    """History. Times are UNIX epoch seconds (UTC): a REAL column inserts several times faster than a
    timezone-aware DATETIME (no per-row conversion) and range queries on it are plain comparisons.

    Indexes: the btree on (endpoint_id, server_ts) serves every per-endpoint query (trends, exports,
    retention); on PostgreSQL it also carries value and quality, so a trend is read from the index
    alone (one endpoint's rows are scattered among every other's in the table: a 12 h trend of 43,200
    rows took 212 ms reading the table, 48 ms from the index; bench/pg_history.py). On PostgreSQL a BRIN
    index on server_ts serves time-only ranges (a listing of every endpoint since a time): rows arrive
    in time order, so a block range's min/max skips most of a 100 M-row table for a few kilobytes of
    index and almost no cost per insert (migration 0002)."""

    __tablename__ = "telemetry_readings"
    __table_args__ = (Index("ix_telemetry_endpoint_time", "endpoint_id", "server_ts",
                            postgresql_include=["value", "quality"]),
                      Index("ix_telemetry_time_brin", "server_ts", postgresql_using="brin")
                      .ddl_if(dialect="postgresql"))
    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int
    value: float | None = None
    quality: str
    source_ts: float | None = None
    server_ts: float


class TelemetryRollup(SQLModel, table=True):
    """One endpoint's good samples over one minute, kept after the raw rows are pruned (retention).

    `minute_ts` is the minute's start in epoch seconds; a minute with no good sample has no row (a gap).
    """

    __tablename__ = "telemetry_rollups"
    __table_args__ = (Index("ix_rollup_time_brin", "minute_ts", postgresql_using="brin").ddl_if(dialect="postgresql"),)
    endpoint_id: int = Field(primary_key=True)
    minute_ts: float = Field(primary_key=True)
    minimum: float
    average: float
    maximum: float
    samples: int


class CommandRow(SQLModel, table=True):
    __tablename__ = "commands"
    id: str = Field(primary_key=True, max_length=64)
    endpoint_id: int = Field(index=True)
    requested_value: Any = Field(default=None, sa_column=Column(JSON))
    actual_value: Any = Field(default=None, sa_column=Column(JSON))
    status: str = Field(index=True)
    error: str | None = None
    reasons: Any = Field(default=None, sa_column=Column(JSON))
    user: str
    station: str
    origin: str = "api"
    created_at: datetime
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime


class AlarmRow(SQLModel, table=True):
    """One alarm occurrence: from raised until back to normal and acknowledged (and reset if latched)."""

    __tablename__ = "alarms"
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True)
    endpoint_id: int | None = None
    node: str | None = None
    kind: str
    severity: str
    message: str
    value: Any = Field(default=None, sa_column=Column(JSON))
    active: bool = True
    acked: bool = False
    latched: bool = False
    state: str = "unacknowledged"  # display state at the last transition (derived; for queries only)
    raised_at: datetime
    cleared_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    closed: bool = False


class AlarmJournalRow(SQLModel, table=True):
    """Append-only: every alarm transition with time and user. Never updated, never deleted."""

    __tablename__ = "alarm_journal"
    __table_args__ = (Index("ix_alarm_journal_time", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    time: datetime
    alarm_id: int | None = Field(default=None, index=True)
    rule_id: str = Field(index=True)
    event: str
    user: str = "system"
    comment: str | None = None
    value: Any = Field(default=None, sa_column=Column(JSON))
    state: str
    priority: str
    message: str


class AlarmPointRow(SQLModel, table=True):
    """Settings of an alarm point that outlive a restart: shelf, out of service, changed limits."""

    __tablename__ = "alarm_points"
    rule_id: str = Field(primary_key=True)
    shelf: str | None = None
    shelved_until: datetime | None = None
    out_of_service: bool = False
    overrides: Any = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime
    updated_by: str = "system"


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    username: str = Field(primary_key=True, max_length=64)
    password_hash: str
    role: str
    nodes: Any = Field(default=None, sa_column=Column(JSON))  # None: every node
    disabled: bool = False
    created_at: datetime
    updated_at: datetime


class TokenRow(SQLModel, table=True):
    """API token; only its SHA-256 is stored (the token itself is shown once, at creation)."""

    __tablename__ = "api_tokens"
    id: str = Field(primary_key=True, max_length=32)
    name: str
    token_hash: str = Field(index=True, unique=True)
    role: str
    nodes: Any = Field(default=None, sa_column=Column(JSON))
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class SessionRow(SQLModel, table=True):
    """Server-side session behind the HttpOnly cookie (stored as a hash of the cookie value)."""

    __tablename__ = "sessions"
    id_hash: str = Field(primary_key=True)
    username: str = Field(index=True)
    station: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None


class AuthChangeRow(SQLModel, table=True):
    """Append-only: one row per change to a user, token or session, written in the same transaction.

    The CLI is another process: this table is how `user passwd/disable` and `token revoke` reach a
    running server, which polls it (bevforge/auth.py) and ends the affected sessions and sockets.
    `ends_sessions`: the change ends every session of that user opened before `time`.
    """

    __tablename__ = "auth_changes"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # user | token
    key: str  # username or token id
    ends_sessions: bool = False
    time: datetime


class AuditRow(SQLModel, table=True):
    """Append-only audit journal: who, where, when, what, old → new, result."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_time", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    time: datetime
    user: str = Field(index=True)
    role: str
    station: str
    action: str = Field(index=True)
    target: str | None = None
    old: Any = Field(default=None, sa_column=Column(JSON))
    new: Any = Field(default=None, sa_column=Column(JSON))
    result: str = "ok"
    command_id: str | None = None
    detail: str | None = None


class ControllerRow(SQLModel, table=True):
    """What a person set on a controller, kept across a restart: mode, setpoint, manual output, tuning."""

    __tablename__ = "controllers"
    controller_id: str = Field(primary_key=True)
    mode: str = "off"
    setpoint: float | None = None
    manual_output: float = 0.0
    tuning: Any = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime
    updated_by: str = "system"


class TrendViewRow(SQLModel, table=True):
    """A trend view someone saved: its pens and time span; `owner` is the user it belongs to (None: shared)."""

    __tablename__ = "trend_views"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    owner: str | None = Field(default=None, index=True)
    pens: Any = Field(default=None, sa_column=Column(JSON))  # endpoint ids, in the legend's order
    span_s: float = 3600.0
    updated_at: datetime
    updated_by: str


class ProgramRow(SQLModel, table=True):
    """A unit's program as it stands, kept across a restart (issue 15's safe resume): which template, its
    state, the step it is at and that step's own state (timer, prompts answered), when it was saved and the
    controllers' process values then (so the resume message can say how far they drifted)."""

    __tablename__ = "programs"
    unit_id: str = Field(primary_key=True)
    template_id: str
    state: str
    step_index: int = 0
    step_state: Any = Field(default=None, sa_column=Column(JSON))
    step_started_at: datetime | None = None
    started_at: datetime | None = None
    started_by: str | None = None
    ended_at: datetime | None = None
    message: str | None = None
    process_values: Any = Field(default=None, sa_column=Column(JSON))
    saved_at: datetime


class RecipeDraftRow(SQLModel, table=True):
    """An imported recipe under review (issue 15): the file as it came (format, text), what was read from it,
    the program it made for its unit as the operator edits it, and who imported and last edited it. A
    program started from a draft is stored as `ProgramRow.template_id = "recipe:<id>"`, so safe resume finds
    the program here (a new table: the `programs` table keeps its columns)."""

    __tablename__ = "recipe_drafts"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    format: str
    source: str
    recipe: Any = Field(default=None, sa_column=Column(JSON))
    program: Any = Field(default=None, sa_column=Column(JSON))
    unit_id: str
    created_by: str
    created_at: datetime
    edited_by: str | None = None
    edited_at: datetime | None = None


class BatchRow(SQLModel, table=True):
    """One program run (issue 15's batch record): what ran on which unit, who started it, when, how it ended.

    `started_at`/`ended_at` are process-clock times (what the program's timers count); `wall_started_at`/
    `wall_ended_at` are the host's clock, which stamps telemetry, the audit and the alarm journal — the
    window those are read over (the same instants in a deployment, where the process clock is the host's).
    `nodes` are the unit's nodes when it ran, so who may see the record does not change with the config."""

    __tablename__ = "batches"
    id: int | None = Field(default=None, primary_key=True)
    unit_id: str = Field(index=True)
    unit_name: str
    nodes: Any = Field(default=None, sa_column=Column(JSON))
    controllers: Any = Field(default=None, sa_column=Column(JSON))
    template_id: str
    template_name: str
    recipe_name: str | None = None
    started_by: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    wall_started_at: datetime
    wall_ended_at: datetime | None = None
    outcome: str = Field(default="running", index=True)  # running | completed | aborted


class BatchStepRow(SQLModel, table=True):
    """One step of a batch as it ran: planned (from the template) against actual (from the clock and the stored
    history of the step's process value). A step run twice (BACK) has two rows, in the order they ran."""

    __tablename__ = "batch_steps"
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(index=True)
    step_index: int
    title: str
    type: str
    controller: str | None = None
    endpoint_id: int | None = None  # the process value the actual figures are of
    planned_target: float | None = None
    band_low: float | None = None  # in band: band_low <= PV <= band_high (None: open on that side)
    band_high: float | None = None
    planned_duration_s: float | None = None
    started_at: datetime
    ended_at: datetime | None = None
    wall_started_at: datetime
    wall_ended_at: datetime | None = None
    actual_duration_s: float | None = None
    actual_mean: float | None = None
    actual_min: float | None = None
    actual_max: float | None = None
    samples: int = 0
    in_band_s: float | None = None
    outcome: str = "running"  # running | done | skipped | restarted | aborted


class ForwardMark(SQLModel, table=True):
    """A site's side of store-and-forward (docs/mqtt.md "Store-and-forward"): `store` is this database's own
    random name, made once (a centre keeps one watermark per site and store, so a site whose database was
    replaced starts a new count instead of being taken for a copy); `acked_id` is the last history row id a
    centre has committed. History rows above it are sent (again) until a centre acknowledges them."""

    __tablename__ = "forward_marks"
    stream: str = Field(primary_key=True)  # "telemetry"
    store: str
    acked_id: int = Field(default=0, sa_type=BigInteger)
    acked_at: datetime | None = None


class SiteWatermark(SQLModel, table=True):
    """A centre's side of store-and-forward: the last row id of `site`'s database `store` it has stored.
    Raised in the transaction that stores the rows, so rows that come twice (a re-send, a second central
    instance on the same database) are skipped, and a gap is seen and asked for again."""

    __tablename__ = "site_watermarks"
    site: str = Field(primary_key=True)
    store: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    last_id: int = Field(default=0, sa_type=BigInteger)
    rows: int = Field(default=0, sa_type=BigInteger)  # rows stored from it in all
    updated_at: datetime = Field(default_factory=utcnow)


class SiteJournalRow(SQLModel, table=True):
    """A centre's copy of a site's alarm journal, forwarded (docs/mqtt.md "Store-and-forward"): the site's own
    entry (`site_id` is its id there) with the site's node mapped to this panel's (None: a node it does not
    show). Append-only, like the journal it copies; a site's entry is here once (the watermark, and the key)."""

    __tablename__ = "site_alarm_journal"
    __table_args__ = (UniqueConstraint("site", "store", "site_id", name="uq_site_alarm_journal_entry"),
                      Index("ix_site_alarm_journal_site_time", "site", "time"))
    id: int | None = Field(default=None, primary_key=True)
    site: str
    store: str
    site_id: int = Field(sa_type=BigInteger)
    time: datetime
    alarm_id: int | None = Field(default=None, sa_type=BigInteger)
    rule_id: str
    event: str
    user: str = "system"
    comment: str | None = None
    value: Any = Field(default=None, sa_column=Column(JSON))
    state: str
    priority: str
    message: str
    node: str | None = None


class SiteAuditRow(SQLModel, table=True):
    """A centre's copy of a site's audit journal, forwarded (the site's commands are in it: `command.request`
    and `command.result` with their command ids). Append-only; a site's entry is here once."""

    __tablename__ = "site_audit"
    __table_args__ = (UniqueConstraint("site", "store", "site_id", name="uq_site_audit_entry"),
                      Index("ix_site_audit_site_time", "site", "time"))
    id: int | None = Field(default=None, primary_key=True)
    site: str
    store: str
    site_id: int = Field(sa_type=BigInteger)
    time: datetime
    user: str
    role: str
    station: str
    action: str
    target: str | None = None
    old: Any = Field(default=None, sa_column=Column(JSON))
    new: Any = Field(default=None, sa_column=Column(JSON))
    result: str = "ok"
    command_id: str | None = None
    detail: str | None = None
