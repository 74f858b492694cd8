"""The status page's opt-in to details: ``devices.public_details``.

A public device shows its name, state, uptime and open incident only; with
``public_details`` true the status page also shows its address and its last check's
latency, status code and error text.  One boolean column, NOT NULL with a server default
of false, added with a plain ADD COLUMN (also on SQLite: nothing is copied); every
existing device keeps showing no details.

Revision ID: 0007_public_details
Revises: 0006_certificate_subject
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_public_details"
down_revision: str | None = "0006_certificate_subject"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "devices",
        sa.Column("public_details", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        batch_op.drop_column("public_details")
