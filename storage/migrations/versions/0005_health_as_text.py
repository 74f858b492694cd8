"""Device health as JSON text: ``device_health.health`` from JSON to TEXT.

The same JSON document, now encoded and decoded by its owner (``jobs.probe.health``,
with msgspec, straight to and from the state machine's ``Health``) instead of through
SQLAlchemy's JSON type and a pydantic validation of the dict: about 150 µs of CPU less
per stored result.  Every stored value is kept as the text it was (PostgreSQL:
``USING health::text``; SQLite already stored text, the table is copied in batch mode
to change the declared type).  ``device_health`` holds one row per device.

Revision ID: 0005_health_as_text
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_health_as_text"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_health") as batch:
        batch.alter_column(
            "health",
            existing_type=sa.JSON(),
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="health::text",
        )


def downgrade() -> None:
    with op.batch_alter_table("device_health") as batch:
        batch.alter_column(
            "health",
            existing_type=sa.Text(),
            type_=sa.JSON(),
            existing_nullable=False,
            postgresql_using="health::json",
        )
