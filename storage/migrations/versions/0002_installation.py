"""The installation's identity: table ``installation`` with one row (a new UUID), made
once per database; every process on the database reads it (storage.installation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    table = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    assert table is not None
    # Written through the storage edge's type (SQLite keeps UTC without the zone).
    row = sa.table("installation", sa.column("id"), sa.column("created_at", UTCDateTime))
    op.bulk_insert(row, [{"id": str(uuid.uuid4()), "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("installation")
