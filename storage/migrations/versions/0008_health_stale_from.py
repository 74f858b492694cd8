"""The sweep's candidates in SQL: ``device_health.stale_from_s``.

The leading scheduler's sweep (every 10 s) turns a device ``unknown`` after two intervals
without a result.  It read and decoded every device's health to find the few that had
gone quiet: ~0.8 s of CPU a sweep at 100,000 devices.  ``stale_from_s`` holds when a
device's silence started counting (the later of its last result's slot and the start of
its state), in seconds since the epoch, so the sweep asks the database for the devices
whose silence is long enough and decodes only those.

A nullable REAL column, added with a plain ADD COLUMN, then filled from each row's health
document (its ``since`` and ``last_slot_at``), a few thousand rows a statement.  NULL
where no silence changes the state (``paused``, ``unknown`` with nothing heard since) and
where the document cannot be read.

Revision ID: 0008_health_stale_from
Revises: 0007_public_details
Create Date: 2026-12-08
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008_health_stale_from"
down_revision: str | None = "0007_public_details"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 2000


def _time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def stale_from(document: str) -> float | None:
    """What jobs.probe.state.quiet_since gives for a stored health document (as
    jobs.probe.health wrote it), in epoch seconds: the later of ``since`` and
    ``last_slot_at``; None when no silence changes the state (``paused``; ``unknown``
    with nothing heard since) or the document cannot be read (the sweep could not
    decode it either)::

        >>> stale_from('{"state":"up","since":"2026-12-01T00:00:00Z",'
        ...     '"last_slot_at":"2026-12-01T00:01:00Z"}')
        1796083260.0
        >>> stale_from('{"state":"down","since":"2026-12-01T00:00:00Z","last_slot_at":null}')
        1796083200.0
        >>> fresh = ('{"state":"unknown","since":"2026-12-01T00:00:00Z",'
        ...     '"consecutive_failures":0,"consecutive_successes":0,'
        ...     '"base":{"state":"unknown","since":"2026-12-01T00:00:00Z",'
        ...     '"consecutive_failures":0,"consecutive_successes":0},"recent":[]}')
        >>> stale_from(fresh) is None
        True
        >>> stale_from('{"state":"paused","since":"2026-12-01T00:00:00Z"}') is None
        True
        >>> stale_from("not json") is None
        True
    """
    try:
        health = json.loads(document)
        state = health["state"]
        since = _time(health["since"])
        if state == "paused":
            return None
        if state == "unknown" and not health.get("recent"):
            base = health.get("base") or {}
            tally = (
                state,
                since,
                health.get("consecutive_failures"),
                health.get("consecutive_successes"),
            )
            kept = (
                base.get("state"),
                _time(base["since"]) if base.get("since") else None,
                base.get("consecutive_failures"),
                base.get("consecutive_successes"),
            )
            if kept == tally:
                return None
        last = health.get("last_slot_at")
        return max(since, _time(last) if last else since).timestamp()
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def upgrade() -> None:
    op.add_column("device_health", sa.Column("stale_from_s", sa.Float(), nullable=True))
    health = sa.table(
        "device_health",
        sa.column("device_id", sa.Integer()),
        sa.column("health", sa.Text()),
        sa.column("stale_from_s", sa.Float()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(health.c.device_id, health.c.health)).all()
    values = [
        {"id": device_id, "s": s}
        for device_id, document in rows
        if (s := stale_from(document)) is not None
    ]
    stmt = (
        sa.update(health)
        .where(health.c.device_id == sa.bindparam("id"))
        .values(stale_from_s=sa.bindparam("s"))
    )
    for start in range(0, len(values), BATCH):
        conn.execute(stmt, values[start : start + BATCH])


def downgrade() -> None:
    with op.batch_alter_table("device_health") as batch_op:
        batch_op.drop_column("stale_from_s")
