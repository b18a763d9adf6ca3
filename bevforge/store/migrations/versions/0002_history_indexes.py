"""History indexes for PostgreSQL at 100 M rows: BRIN on time, and the trend read from the index alone.

- BRIN on telemetry_readings.server_ts and telemetry_rollups.minute_ts: a range over every endpoint
  (GET /api/os/telemetry?since=…, the pruning of old rollups) had only a full scan. Rows arrive in time
  order, so BRIN (min/max per block range) finds a time range from an index of a few kilobytes that
  costs almost nothing per insert.
- The (endpoint_id, server_ts) btree is rebuilt to INCLUDE (value, quality): a trend's GROUP BY then
  reads the index only, never the table pages its rows are scattered over (one endpoint's samples lie
  among every other endpoint's). The rebuild reads the whole table once: minutes on a large one, at
  the first start after the update.

SQLite has neither BRIN nor INCLUDE: nothing changes there. Indexes only: SCHEMA_VERSION stays 1 (an
older BevForge reads the same rows).

Revision ID: 0002_history_indexes
Revises: 0001_baseline
"""
from __future__ import annotations

from alembic import op

revision = "0002_history_indexes"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_telemetry_time_brin", "telemetry_readings", ["server_ts"], postgresql_using="brin")
    op.create_index("ix_rollup_time_brin", "telemetry_rollups", ["minute_ts"], postgresql_using="brin")
    op.drop_index("ix_telemetry_endpoint_time", table_name="telemetry_readings")
    op.create_index("ix_telemetry_endpoint_time", "telemetry_readings", ["endpoint_id", "server_ts"],
                    postgresql_include=["value", "quality"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_telemetry_endpoint_time", table_name="telemetry_readings")
    op.create_index("ix_telemetry_endpoint_time", "telemetry_readings", ["endpoint_id", "server_ts"])
    op.drop_index("ix_rollup_time_brin", table_name="telemetry_rollups")
    op.drop_index("ix_telemetry_time_brin", table_name="telemetry_readings")
