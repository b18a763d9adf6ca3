"""Store-and-forward of a site's events: the centre's copies of its sites' alarm journals and audit journals.

- `site_alarm_journal` (a centre): each forwarded alarm-journal entry of a site, with the site's own id,
  once per (site, store, site id), and the site's node mapped to the centre's;
- `site_audit` (a centre): each forwarded audit entry of a site (its commands' requests and results among
  them), once per (site, store, site id).

New tables only: an older BevForge reads the same rows (SCHEMA_VERSION stays 1).

Revision ID: 0004_site_events
Revises: 0003_store_and_forward
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004_site_events"
down_revision = "0003_store_and_forward"
branch_labels = None
depends_on = None


def _absent(table: str) -> bool:
    """A database adopted from create_all (made by the models of this version) already has the tables."""
    return not sa.inspect(op.get_bind()).has_table(table)


def _site_columns() -> list[sa.Column]:
    return [sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("site", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("store", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("site_id", sa.BigInteger(), nullable=False),
            sa.Column("time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)]


def upgrade() -> None:
    if _absent("site_alarm_journal"):
        op.create_table("site_alarm_journal", *_site_columns(),
                        sa.Column("alarm_id", sa.BigInteger(), nullable=True),
                        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                        sa.Column("value", sa.JSON(), nullable=True),
                        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("priority", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                        sa.PrimaryKeyConstraint("id"),
                        sa.UniqueConstraint("site", "store", "site_id", name="uq_site_alarm_journal_entry"))
        op.create_index("ix_site_alarm_journal_site_time", "site_alarm_journal", ["site", "time"], unique=False)
    if _absent("site_audit"):
        op.create_table("site_audit", *_site_columns(),
                        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("station", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                        sa.Column("old", sa.JSON(), nullable=True),
                        sa.Column("new", sa.JSON(), nullable=True),
                        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                        sa.Column("command_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
                        sa.PrimaryKeyConstraint("id"),
                        sa.UniqueConstraint("site", "store", "site_id", name="uq_site_audit_entry"))
        op.create_index("ix_site_audit_site_time", "site_audit", ["site", "time"], unique=False)


def downgrade() -> None:
    op.drop_table("site_audit")
    op.drop_table("site_alarm_journal")
