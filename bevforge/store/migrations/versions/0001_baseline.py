"""Baseline: the schema as it was before migrations (SCHEMA_VERSION 1, tables made by create_all).

Frozen: later changes are new revisions, never edits here. Each table is created only when it is
absent, so a database made by create_all before migrations existed is adopted with its rows kept
(and one from an older BevForge gains the tables it lacked).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-29 17:59:59.132469
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _absent(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent("alarm_journal"):
        op.create_table("alarm_journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("priority", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("alarm_journal", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_alarm_journal_alarm_id"), ["alarm_id"], unique=False)
            batch_op.create_index(batch_op.f("ix_alarm_journal_rule_id"), ["rule_id"], unique=False)
            batch_op.create_index("ix_alarm_journal_time", ["time"], unique=False)

    if _absent("alarm_points"):
        op.create_table("alarm_points",
        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("shelf", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("shelved_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("out_of_service", sa.Boolean(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id")
        )
    if _absent("alarms"):
        op.create_table("alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("acked", sa.Boolean(), nullable=False),
        sa.Column("latched", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("raised_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("cleared_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("acked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("acked_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("ack_comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("alarms", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_alarms_rule_id"), ["rule_id"], unique=False)

    if _absent("api_tokens"):
        op.create_table("api_tokens",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("api_tokens", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_api_tokens_token_hash"), ["token_hash"], unique=True)

    if _absent("audit"):
        op.create_table("audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
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
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("audit", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_audit_action"), ["action"], unique=False)
            batch_op.create_index("ix_audit_time", ["time"], unique=False)
            batch_op.create_index(batch_op.f("ix_audit_user"), ["user"], unique=False)

    if _absent("auth_changes"):
        op.create_table("auth_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ends_sessions", sa.Boolean(), nullable=False),
        sa.Column("time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
    if _absent("batch_steps"):
        op.create_table("batch_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("controller", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("planned_target", sa.Float(), nullable=True),
        sa.Column("band_low", sa.Float(), nullable=True),
        sa.Column("band_high", sa.Float(), nullable=True),
        sa.Column("planned_duration_s", sa.Float(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("wall_started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("wall_ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("actual_duration_s", sa.Float(), nullable=True),
        sa.Column("actual_mean", sa.Float(), nullable=True),
        sa.Column("actual_min", sa.Float(), nullable=True),
        sa.Column("actual_max", sa.Float(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("in_band_s", sa.Float(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("batch_steps", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_batch_steps_batch_id"), ["batch_id"], unique=False)

    if _absent("batches"):
        op.create_table("batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unit_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=True),
        sa.Column("controllers", sa.JSON(), nullable=True),
        sa.Column("template_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("template_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recipe_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("wall_started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("wall_ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("batches", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_batches_outcome"), ["outcome"], unique=False)
            batch_op.create_index(batch_op.f("ix_batches_unit_id"), ["unit_id"], unique=False)

    if _absent("commands"):
        op.create_table("commands",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("requested_value", sa.JSON(), nullable=True),
        sa.Column("actual_value", sa.JSON(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("station", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("queued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("acked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("commands", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_commands_endpoint_id"), ["endpoint_id"], unique=False)
            batch_op.create_index(batch_op.f("ix_commands_status"), ["status"], unique=False)

    if _absent("controllers"):
        op.create_table("controllers",
        sa.Column("controller_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("setpoint", sa.Float(), nullable=True),
        sa.Column("manual_output", sa.Float(), nullable=False),
        sa.Column("tuning", sa.JSON(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("controller_id")
        )
    if _absent("endpoint_current"):
        op.create_table("endpoint_current",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("quality", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("server_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("endpoint_id")
        )
    if _absent("endpoints"):
        op.create_table("endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("data_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("writable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
    if _absent("programs"):
        op.create_table("programs",
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("template_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_state", sa.JSON(), nullable=True),
        sa.Column("step_started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("process_values", sa.JSON(), nullable=True),
        sa.Column("saved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id")
        )
    if _absent("recipe_drafts"):
        op.create_table("recipe_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=True),
        sa.Column("program", sa.JSON(), nullable=True),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("edited_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("edited_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id")
        )
    if _absent("schema_version"):
        op.create_table("schema_version",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("applied_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version")
        )
    if _absent("sessions"):
        op.create_table("sessions",
        sa.Column("id_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("station", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_hash")
        )
        with op.batch_alter_table("sessions", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_sessions_username"), ["username"], unique=False)

    if _absent("telemetry_readings"):
        op.create_table("telemetry_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("quality", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_ts", sa.Float(), nullable=True),
        sa.Column("server_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("telemetry_readings", schema=None) as batch_op:
            batch_op.create_index("ix_telemetry_endpoint_time", ["endpoint_id", "server_ts"], unique=False)

    if _absent("telemetry_rollups"):
        op.create_table("telemetry_rollups",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("minute_ts", sa.Float(), nullable=False),
        sa.Column("minimum", sa.Float(), nullable=False),
        sa.Column("average", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint_id", "minute_ts")
        )
    if _absent("trend_views"):
        op.create_table("trend_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("pens", sa.JSON(), nullable=True),
        sa.Column("span_s", sa.Float(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id")
        )
        with op.batch_alter_table("trend_views", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_trend_views_owner"), ["owner"], unique=False)

    if _absent("users"):
        op.create_table("users",
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username")
        )


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore a backup instead")
