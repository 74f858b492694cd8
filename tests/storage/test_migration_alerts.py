"""Migration 0004 (alerts) on a database at 0003 holding real rows: the rows stay, the new
tables arrive, and the ledger's unique key keeps one row per (change, channel, reminder)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.settings import Settings
from storage.alert_repo import record_notifications
from storage.db import init_db, make_engine, session_factory
from storage.migrate import alembic_config, schema_state
from storage.models import Device, StateChange

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _upgrade_to_0003(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0003")
    conn.commit()


async def test_0004_keeps_the_rows_of_0003_and_adds_the_alert_tables(tmp_path: Path) -> None:
    engine = make_engine(Settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"))  # type: ignore[call-arg]
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade_to_0003)
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO devices (id, name, address, is_active, created_at, updated_at,"
                " failure_threshold, success_threshold, follow_redirects, verify_tls,"
                " reminder_every_minutes, public, channel_ids, notify_on)"
                " VALUES (3, 'edge', 'http://e/', 1, '2026-11-30 12:00:00',"
                " '2026-11-30 12:00:00', 3, 1, 1, 1, 15, 0, '[1]', '[\"down\"]')"
            ))  # fmt: skip
            await conn.execute(text(
                "INSERT INTO state_changes (id, device_id, revision, from_state, to_state, at)"
                " VALUES (8, 3, 1, 'up', 'down', '2026-11-30 12:00:00')"
            ))  # fmt: skip
        before = await schema_state(engine)
        assert before.current == ("0003",)
        await init_db(engine)
        after = await schema_state(engine)
        assert after.current == (after.head,)  # 0004, and what came after it
        async with session_factory(engine)() as session:
            device = await session.get(Device, 3)
            change = await session.get(StateChange, 8)
        assert device is not None and change is not None
        assert (device.channel_ids, device.notify_on, device.reminder_every_minutes) == (
            [1], ["down"], 15,
        )  # fmt: skip
        assert (change.to_state, change.at) == ("down", AT)
        row = {
            "device_id": 3,
            "channel_id": 1,
            "state_change_id": 8,
            "reminder": 0,
            "status": "pending",
        }
        assert await record_notifications(engine, [row, {**row, "reminder": 1}]) == 2
        assert await record_notifications(engine, [row]) == 0  # the same key: nothing new
        async with engine.connect() as conn:
            ledger = (await conn.execute(text(
                "SELECT reminder, status, attempts FROM notifications ORDER BY reminder"
            ))).all()  # fmt: skip
            channels = (await conn.execute(text("SELECT count(*) FROM channels"))).scalar_one()
            windows = (
                await conn.execute(text("SELECT count(*) FROM maintenance_windows"))
            ).scalar_one()
        assert [tuple(r) for r in ledger] == [(0, "pending", 0), (1, "pending", 0)]
        assert (channels, windows) == (0, 0)
    finally:
        await engine.dispose()
