"""Store-and-forward: a site's acknowledged position, a centre's watermark per site (docs/mqtt.md).

- `forward_marks` (a site): the last history row id a centre has committed, and the database's own
  random name (`store`);
- `site_watermarks` (a centre): per site, store and stream, the last row id stored, raised in the same
  transaction as the rows (a re-send or a second central instance skips what is there).

New tables only: an older BevForge reads the same rows (SCHEMA_VERSION stays 1).

Revision ID: 0003_store_and_forward
Revises: 0002_history_indexes
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003_store_and_forward"
down_revision = "0002_history_indexes"
branch_labels = None
depends_on = None


def _absent(table: str) -> bool:
    """A database adopted from create_all (made by the models of this version) already has the tables."""
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent("forward_marks"):
        op.create_table("forward_marks",
                        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("store", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("acked_id", sa.BigInteger(), nullable=False),
                        sa.Column("acked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                        sa.PrimaryKeyConstraint("stream"))
    if _absent("site_watermarks"):
        op.create_table("site_watermarks",
                        sa.Column("site", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("store", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("last_id", sa.BigInteger(), nullable=False),
                        sa.Column("rows", sa.BigInteger(), nullable=False),
                        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                        sa.PrimaryKeyConstraint("site", "store", "stream"))


def downgrade() -> None:
    op.drop_table("site_watermarks")
    op.drop_table("forward_marks")
