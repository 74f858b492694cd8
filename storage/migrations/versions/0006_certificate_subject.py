"""The certificate's subject on check results: ``check_results.certificate_subject``.

A ``tls://`` check (and an ``https://`` one) reads the peer certificate's expiry and
subject; the expiry was stored since revision 0003, the subject was read and dropped.
One nullable column, added with a plain ADD COLUMN (also on SQLite: nothing is copied);
older rows keep null.

Revision ID: 0006_certificate_subject
Revises: 0005_health_as_text
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_certificate_subject"
down_revision: str | None = "0005_health_as_text"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "check_results", sa.Column("certificate_subject", sa.String(length=500), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("check_results") as batch_op:
        batch_op.drop_column("certificate_subject")
