"""Health: check kinds and conditions per device (and the alert and status-page fields
beside them), each result's outcome and verdicts, the per-device health row decided by
compare-and-swap, state changes, and hourly/daily rollups of results.

Columns are added (SQLite: ALTER TABLE ADD COLUMN, no table copy), so a large
``check_results`` upgrades in place; existing rows get ``outcome`` NULL (read from
``status_up``) and the devices the defaults (thresholds 3/1, redirects followed, TLS
verified, not public).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "check_rollups",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=1), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("down", sa.Integer(), nullable=False),
        sa.Column("in_maintenance", sa.Integer(), nullable=False),
        sa.Column("latency_count", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=False),
        sa.Column("lat_le_10", sa.Integer(), nullable=False),
        sa.Column("lat_le_25", sa.Integer(), nullable=False),
        sa.Column("lat_le_50", sa.Integer(), nullable=False),
        sa.Column("lat_le_100", sa.Integer(), nullable=False),
        sa.Column("lat_le_250", sa.Integer(), nullable=False),
        sa.Column("lat_le_500", sa.Integer(), nullable=False),
        sa.Column("lat_le_1000", sa.Integer(), nullable=False),
        sa.Column("lat_le_2500", sa.Integer(), nullable=False),
        sa.Column("lat_le_5000", sa.Integer(), nullable=False),
        sa.Column("lat_le_10000", sa.Integer(), nullable=False),
        sa.Column("lat_le_inf", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "period", "start"),
    )
    op.create_table(
        "device_health",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("health", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "state_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=10), nullable=False),
        sa.Column("to_state", sa.String(length=10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(length=500), nullable=True),
        sa.Column("run_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "revision", name="uq_state_changes_device_revision"),
    )
    op.create_index("ix_state_changes_device_at", "state_changes", ["device_id", "at"])
    # Plain ADD COLUMN, also on SQLite (batch mode would copy check_results whole).
    for column in _result_columns():
        op.add_column("check_results", column)
    for column in _device_columns():
        op.add_column("devices", column)


def _result_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("outcome", sa.String(length=10), nullable=True),
        sa.Column("verdicts", sa.JSON(), nullable=True),
        sa.Column("degraded_verdicts", sa.JSON(), nullable=True),
        sa.Column("certificate_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_maintenance", sa.Boolean(), server_default=sa.false(), nullable=False),
    ]


def _device_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("conditions", sa.JSON(), nullable=True),
        sa.Column("degraded_when", sa.JSON(), nullable=True),
        sa.Column("failure_threshold", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("success_threshold", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("retry_interval_seconds", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("follow_redirects", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("verify_tls", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("channel_ids", sa.JSON(), nullable=True),
        sa.Column("notify_on", sa.JSON(), nullable=True),
        sa.Column(
            "reminder_every_minutes", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False),
    ]


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        for column in _device_columns():
            batch_op.drop_column(column.name)
    with op.batch_alter_table("check_results") as batch_op:
        for column in _result_columns():
            batch_op.drop_column(column.name)
    op.drop_index("ix_state_changes_device_at", table_name="state_changes")
    op.drop_table("state_changes")
    op.drop_table("device_health")
    op.drop_table("check_rollups")
