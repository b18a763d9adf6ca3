"""History by time on PostgreSQL: BRIN indexes on telemetry_readings.server_ts and telemetry_rollups.minute_ts.

The (endpoint_id, server_ts) btree from the baseline serves every per-endpoint query; a range over
every endpoint (GET /api/os/telemetry?since=…, the pruning of old rollups) had only a full scan. Rows
arrive in time order, so BRIN (min/max per block range) finds a time range in a 100 M-row table from
an index of a few kilobytes that costs almost nothing per insert. SQLite has no BRIN: nothing changes
there. Indexes only: SCHEMA_VERSION stays 1 (an older BevForge reads the same rows).

Revision ID: 0002_history_time_brin
Revises: 0001_baseline
"""
from __future__ import annotations

from alembic import op

revision = "0002_history_time_brin"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_telemetry_time_brin", "telemetry_readings", ["server_ts"], postgresql_using="brin")
        op.create_index("ix_rollup_time_brin", "telemetry_rollups", ["minute_ts"], postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_rollup_time_brin", table_name="telemetry_rollups")
        op.drop_index("ix_telemetry_time_brin", table_name="telemetry_readings")
