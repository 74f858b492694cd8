"""Rollups, uptime, status and retention on PostgreSQL (its upsert, GREATEST, row-value
deletes); skipped without a server at TEST_POSTGRES_URL, required under CI=true."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import repo
from storage.db import session_factory
from storage.retention import prune
from storage.uptime import device_statuses, device_uptime
from storage.uptime_maths import parse_windows
from tests.storage.test_rollups import T0, check, check_writer, recount, stored_rollups

pytestmark = pytest.mark.postgres


async def test_rollups_uptime_status_and_retention_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, other = pg
    async with session_factory(engine)() as session:
        for i in range(4):
            await repo.create_device(session, name=f"d{i}", address="http://x.test/")
    rnd = random.Random(5)
    rows = [check(f"r{i}", rnd) for i in range(800)]
    a, b = check_writer(engine, 40), check_writer(other, 64)
    try:
        sends = [a.write(dict(r)) for r in rows] + [b.write(dict(r)) for r in rows]
        rnd.shuffle(sends)
        await asyncio.gather(*sends)
    finally:
        await a.close()
        await b.close()
    assert await stored_rollups(engine) == await recount(engine)

    now = T0 + timedelta(days=2)
    [day, month] = await device_uptime(engine, 1, parse_windows("24h,30d"), now) or []
    assert month.checks == sum(1 for r in rows if r["device_id"] == 1)
    assert day.uptime_percent is None and month.unknown_seconds == 30 * 86400
    statuses = await device_statuses(engine, now, limit=10, offset=0, day=parse_windows("24h")[0])
    assert [s.device_id for s in statuses] == [1, 2, 3, 4]
    assert all(s.last_check is not None for s in statuses)

    pruned = await prune(engine, now, retention_days=1, rollup_retention_days=1, batch=50)
    assert pruned.checks > 0 and pruned.rollups > 0 and pruned.batches > 2
    [after] = await device_uptime(engine, 1, parse_windows("30d"), now) or []
    assert after.checks < month.checks  # the rollups older than a day went too
