"""Migration 0008 (``device_health.stale_from_s``) on a database at 0007 holding devices and
their health as the code before it wrote them (up and heard from, down, gone quiet,
never heard from, paused, and one document nobody can read): every row is still there
with its document, each gets when its silence started counting (or NULL where silence
changes nothing), and the leader's sweep afterwards turns exactly the quiet device
unknown; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.probe.conditions import Outcome
from jobs.probe.health import HealthTracker, encode_health
from jobs.probe.state import Health, Observation, State, Thresholds, pause, step
from storage.db import init_db
from storage.migrate import alembic_config, schema_state
from storage.models import DeviceHealth
from storage.types import UTCDateTime
from tests.storage.test_migration_public_details import OLD_DEVICES, T0, _old_device

# device_health as revision 0007 declared it: no stale_from_s.
OLD_HEALTH = Table(
    "device_health",
    MetaData(),
    Column("device_id", Integer, primary_key=True),
    Column("state", String(10)),
    Column("since", UTCDateTime),
    Column("revision", Integer),
    Column("health", Text),
    Column("updated_at", UTCDateTime),
)


def _heard(*outcomes: Outcome) -> Health:
    """A device created at T0 with one result a minute (slot T0 + n minutes)."""
    health = Health.new(T0)
    for n, outcome in enumerate(outcomes, start=1):
        at = T0 + timedelta(minutes=n)
        health, _ = step(health, Observation(outcome, at, f"probe:x:{n}", None), Thresholds())
    return health


UP, DOWN = Outcome.UP, Outcome.DOWN
# device id -> (its health as stored, stale_from_s expected after the upgrade)
HEALTHS: dict[int, tuple[Health | str, datetime | None]] = {
    1: (_heard(UP, UP, UP), T0 + timedelta(minutes=3)),  # up, heard at slot 3
    2: (_heard(DOWN, DOWN, DOWN, DOWN), T0 + timedelta(minutes=4)),  # down
    3: (_heard(UP), T0 + timedelta(minutes=1)),  # up, then quiet
    4: (Health.new(T0), None),  # never heard from: silence changes nothing
    5: (pause(_heard(UP), T0 + timedelta(minutes=2))[0], None),  # paused
    6: ("{not a health document", None),  # unreadable: kept as it is
}


def _old_health(device_id: int) -> dict[str, Any]:
    health, _ = HEALTHS[device_id]
    document = health if isinstance(health, str) else encode_health(health)
    stored = health if isinstance(health, Health) else Health.new(T0, State.UP)
    return {
        "device_id": device_id,
        "state": str(stored.state),
        "since": stored.since,
        "revision": stored.revision,
        "health": document,
        "updated_at": T0,
    }


def _upgrade_to_0007(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0007_public_details")
    conn.commit()


async def _upgrade_keeps_health_and_fills_stale_from(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_to_0007)
    async with engine.begin() as conn:
        for device_id in HEALTHS:
            device = _old_device(device_id, f"d{device_id}", False)
            device.update(interval_seconds=60, timeout_seconds=5.0, is_active=device_id != 5)
            await conn.execute(OLD_DEVICES.insert().values(device))
        await conn.execute(OLD_HEALTH.insert(), [_old_health(i) for i in HEALTHS])
    assert (await schema_state(engine)).current == ("0007_public_details",)

    await init_db(engine)
    state = await schema_state(engine)
    assert state.current == (state.head,)

    table = DeviceHealth.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = {r.device_id: r._mapping for r in await conn.execute(select(table))}
    assert set(rows) == set(HEALTHS)  # no row lost
    for device_id, (_, expected) in HEALTHS.items():
        row = rows[device_id]
        before = _old_health(device_id)
        assert {name: row[name] for name in before} == before  # every value kept
        stale_from = row["stale_from_s"]
        if expected is None:
            assert stale_from is None, device_id
        else:
            assert stale_from is not None and abs(stale_from - expected.timestamp()) < 1e-3

    # The sweep after the upgrade: at slot 1 + 125 s + 1 s only device 3 (quiet since
    # slot 1) has gone two intervals and its timeout without a result.
    settings = Settings()  # type: ignore[call-arg]
    now = T0 + timedelta(minutes=1, seconds=126)
    tracker = HealthTracker()
    assert await tracker.sweep(engine, settings, now) == 1
    async with engine.connect() as conn:
        states = {r.device_id: r.state for r in await conn.execute(select(table))}
    assert states == {1: "up", 2: "down", 3: "unknown", 4: "unknown", 5: "paused", 6: "up"}


async def test_0008_keeps_every_health_row_of_0007_and_fills_stale_from(
    blank_engine: AsyncEngine,
) -> None:
    await _upgrade_keeps_health_and_fills_stale_from(blank_engine)
