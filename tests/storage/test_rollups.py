"""Rollups kept by the check writer's hook equal a recount from the raw rows, whatever the
writers, batches and redeliveries (real SQLite file, two engines as two processes)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage import repo
from storage.db import make_engine, session_factory
from storage.models import CheckResult, CheckRollup
from storage.rollups import rollups_hook
from storage.uptime_maths import rollup_rows
from storage.writer import BatchWriter

T0 = datetime(2026, 3, 10, 22, 0, tzinfo=UTC)
OUTCOMES = ["up", "up", "up", "degraded", "down", None]


def check(key: str, rnd: random.Random) -> dict[str, Any]:
    outcome = rnd.choice(OUTCOMES)
    return {
        "device_id": rnd.randint(1, 4),
        "status_up": outcome != "down" if outcome else rnd.random() < 0.7,
        "outcome": outcome,
        # halves: sums are exact in floating point
        "latency_ms": None if rnd.random() < 0.1 else rnd.randint(0, 24_000) / 2,
        "checked_at": T0 + timedelta(minutes=rnd.randint(0, 60 * 30)),  # over two days
        "run_key": key,
        "slot_at": None,
        "status_code": 200,
        "error_kind": None,
        "error": None,
        "source": "schedule",
        "in_maintenance": rnd.random() < 0.05,
    }


def check_writer(engine: AsyncEngine, batch_size: int) -> BatchWriter:
    table = CheckResult.__table__  # type: ignore[attr-defined]
    return BatchWriter(
        engine, table, "run_key", batch_size=batch_size, flush_ms=3, after_insert=[rollups_hook]
    )


async def stored_rollups(engine: AsyncEngine) -> list[dict[str, Any]]:
    table = CheckRollup.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).mappings().all()
    return sorted((dict(r) for r in rows), key=lambda r: (r["device_id"], r["period"], r["start"]))


async def recount(engine: AsyncEngine) -> list[dict[str, Any]]:
    table = CheckResult.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).mappings().all()
    return rollup_rows(dict(r) for r in rows)


async def test_rollups_equal_a_recount_after_two_writers_stored_overlapping_batches(
    engine: AsyncEngine, settings: Settings
) -> None:
    other = make_engine(settings)  # a second process's pool on the same file
    rnd = random.Random(11)
    rows = [check(f"r{i}", rnd) for i in range(1500)]
    # Every row is sent to both writers (a redelivery racing the first delivery), some
    # twice to the same one: each must be counted once.
    first, second = check_writer(engine, 37), check_writer(other, 50)
    try:
        sends = [first.write(dict(r)) for r in rows] + [second.write(dict(r)) for r in rows]
        sends += [first.write(dict(r)) for r in rows[::7]]
        rnd.shuffle(sends)
        results = await asyncio.gather(*sends)
    finally:
        await first.close()
        await second.close()
        await other.dispose()
    assert sum(1 for r in results if r is not None) == len(rows)
    assert first.batches_written > 1 and second.batches_written > 1
    stored = await stored_rollups(engine)
    assert stored == await recount(engine)
    hourly = [r for r in stored if r["period"] == "h"]
    assert sum(r["checks"] for r in hourly) == len(rows)
    assert sum(r["checks"] for r in stored if r["period"] == "d") == len(rows)
    assert sum(r["in_maintenance"] for r in hourly) == sum(1 for r in rows if r["in_maintenance"])


async def test_a_manual_check_is_counted_in_its_rollups_and_a_deleted_device_takes_them(
    engine: AsyncEngine,
) -> None:
    async with session_factory(engine)() as session:
        device = await repo.create_device(session, name="d", address="http://127.0.0.1:9/")
    assert device.id is not None
    row = check("manual:1", random.Random(1)) | {
        "device_id": device.id,
        "outcome": "down",
        "status_up": False,
        "in_maintenance": False,
        "latency_ms": 30.0,
    }
    assert await repo.insert_device_check(engine, row) is not None
    [day, hour] = await stored_rollups(engine)
    assert (day["period"], hour["period"]) == ("d", "h")
    assert hour["checks"] == hour["down"] == hour["lat_le_50"] == 1
    async with session_factory(engine)() as session:
        found = await repo.get_device(session, device.id)
        assert found is not None
        await repo.delete_device(session, found)
    assert await stored_rollups(engine) == []
