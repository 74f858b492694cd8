"""Retention (real SQLite file): old results and rollups go in small batches, nothing
younger than the limit is lost while results are being written, and uptime read from
rollups and state changes is the same before and after the raw rows are pruned."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import repo
from storage.db import session_factory
from storage.models import CheckResult, CheckRollup, StateChange
from storage.retention import prune
from storage.rollups import rollups_hook
from storage.uptime import device_uptime
from storage.uptime_maths import parse_windows
from storage.writer import BatchWriter

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHECKS = CheckResult.__table__  # type: ignore[attr-defined]
ROLLUPS = CheckRollup.__table__  # type: ignore[attr-defined]


def check(key: str, device_id: int, at: datetime, up: bool = True) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "status_up": up,
        "outcome": "up" if up else "down",
        "latency_ms": 40.0 if up else 900.0,
        "checked_at": at,
        "run_key": key,
        "slot_at": None,
        "status_code": 200 if up else 500,
        "error_kind": None,
        "error": None,
        "source": "schedule",
        "in_maintenance": False,
    }


def writer(engine: AsyncEngine, batch_size: int = 200) -> BatchWriter:
    return BatchWriter(
        engine, CHECKS, "run_key", batch_size=batch_size, flush_ms=2, after_insert=[rollups_hook]
    )


async def devices(engine: AsyncEngine, n: int) -> list[int]:
    ids = []
    async with session_factory(engine)() as session:
        for i in range(n):
            device = await repo.create_device(session, name=f"d{i}", address="http://x.test/")
            assert device.id is not None
            ids.append(device.id)
    return ids


async def run_keys(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(CHECKS.c.run_key))).scalars())


async def test_pruning_while_results_are_written_loses_no_row_younger_than_the_limit(
    engine: AsyncEngine,
) -> None:
    ids = await devices(engine, 3)
    limit = NOW - timedelta(days=30)
    w = writer(engine)
    old = [
        check(f"old{i}", ids[i % 3], limit - timedelta(minutes=1 + i % 5000)) for i in range(6000)
    ]
    await asyncio.gather(*(w.write(r) for r in old))
    # Written while the pruner runs: young rows, some a second inside the limit, and
    # late old ones that may or may not be pruned in this run.
    young = [
        check(f"young{i}", ids[i % 3], limit + timedelta(seconds=1 + i % 3)) for i in range(3000)
    ]
    late_old = [check(f"late{i}", ids[i % 3], limit - timedelta(hours=1)) for i in range(300)]

    async def write_meanwhile() -> None:
        for start in range(0, len(young), 100):
            await asyncio.gather(*(w.write(r) for r in young[start : start + 100]))
            if start % 1000 == 0:
                await asyncio.gather(*(w.write(r) for r in late_old[start // 10 :][:100]))
            await asyncio.sleep(0)

    pruned, _ = await asyncio.gather(
        prune(engine, NOW, retention_days=30, rollup_retention_days=400, batch=500),
        write_meanwhile(),
    )
    await w.close()
    kept = await run_keys(engine)
    assert {r["run_key"] for r in young} <= kept
    assert not kept & {r["run_key"] for r in old}
    assert pruned.checks >= len(old) and pruned.batches >= len(old) // 500
    # A second run takes the late old rows; the young stay.
    again = await prune(engine, NOW, retention_days=30, rollup_retention_days=400, batch=500)
    assert await run_keys(engine) == {r["run_key"] for r in young}
    assert pruned.checks + again.checks == len(old) + len(late_old)


async def test_rollups_older_than_their_limit_are_pruned_and_younger_ones_kept(
    engine: AsyncEngine,
) -> None:
    [device] = await devices(engine, 1)
    w = writer(engine)
    at = [NOW - timedelta(days=d) for d in (1, 30, 399, 401, 500)]
    await asyncio.gather(*(w.write(check(f"k{i}", device, t)) for i, t in enumerate(at)))
    await w.close()
    pruned = await prune(engine, NOW, retention_days=0, rollup_retention_days=400, batch=3)
    async with engine.connect() as conn:
        starts = sorted((await conn.execute(select(ROLLUPS.c.start))).scalars())
        checks = (await conn.execute(select(func.count()).select_from(CHECKS))).scalar_one()
    assert pruned.rollups == 4 and pruned.checks == 0 and checks == 5  # 0 days: kept
    assert min(starts) >= NOW - timedelta(days=400)
    assert len(starts) == 6  # an hour and a day for each of the three younger results


async def test_uptime_is_unchanged_after_retention_pruned_the_raw_rows(
    engine: AsyncEngine,
) -> None:
    [device] = await devices(engine, 1)
    w = writer(engine)
    # 20 days of results every 30 minutes, down for six hours ten days ago
    outage = (NOW - timedelta(days=10), NOW - timedelta(days=10) + timedelta(hours=6))
    rows = []
    for i in range(20 * 48):
        at = NOW - timedelta(minutes=30 * i + 7)
        rows.append(check(f"k{i}", device, at, up=not outage[0] <= at < outage[1]))
    await asyncio.gather(*(w.write(r) for r in rows))
    await w.close()
    async with engine.begin() as conn:
        await conn.execute(
            insert(StateChange.__table__),  # type: ignore[attr-defined]
            [
                {"device_id": device, "revision": 1, "from_state": "unknown",
                 "to_state": "up", "at": NOW - timedelta(days=20), "run_key": "k1"},
                {"device_id": device, "revision": 2, "from_state": "up",
                 "to_state": "down", "at": outage[0], "run_key": "k2"},
                {"device_id": device, "revision": 3, "from_state": "down",
                 "to_state": "up", "at": outage[1], "run_key": "k3"},
            ],
        )  # fmt: skip
    windows = parse_windows("24h,7d,14d,30d")
    before = await device_uptime(engine, device, windows, NOW)
    pruned = await prune(engine, NOW, retention_days=1, rollup_retention_days=400)
    after = await device_uptime(engine, device, windows, NOW)
    assert pruned.checks > 18 * 48
    assert before == after
    assert before is not None
    by_window = {w.window: w for w in before}
    assert by_window["7d"].uptime_percent == 100.0 and by_window["7d"].checks == 7 * 48
    assert by_window["14d"].down_percent == round(6 / (14 * 24) * 100, 4)
    assert by_window["30d"].checks == len(rows)
    assert by_window["30d"].unknown_seconds == 10 * 86400  # before the first change
    assert by_window["14d"].latency_max_ms == 900.0 and by_window["7d"].latency_max_ms == 40.0
