"""``storage.recent.recent_checks``: each device's newest results, oldest first, on SQLite
and PostgreSQL (skipped without a server at TEST_POSTGRES_URL, required under CI=true)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import repo
from storage.db import session_factory
from storage.models import CheckResult
from storage.recent import recent_checks
from tests.storage.test_postgres import pg_engine  # noqa: F401  (the fixture)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def fleet(engine: AsyncEngine) -> list[int]:
    """Four devices with 0, 3, 40 results and 5 results of which 3 share one time."""
    async with session_factory(engine)() as session:
        ids = [
            (await repo.create_device(session, name=f"d{i}", address="http://x.test/")).id
            for i in range(4)
        ]
    rows = []
    for device_id, times in zip(
        ids[1:], ([0, 1, 2], list(range(40)), [0, 1, 7, 7, 7]), strict=True
    ):
        for k, minute in enumerate(times):
            rows.append(
                {"device_id": device_id, "status_up": k % 4 != 3, "latency_ms": float(k),
                 "checked_at": T0 + timedelta(minutes=minute), "run_key": f"{device_id}-{k}",
                 "source": "test", "outcome": "degraded" if k == 35 else None}
            )  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(insert(CheckResult.__table__), rows)  # type: ignore[attr-defined]
    return [i for i in ids if i is not None]


async def assert_recent(engine: AsyncEngine) -> None:
    none, three, forty, tied = await fleet(engine)
    async with engine.connect() as conn:
        got = await recent_checks(conn, [none, three, forty, tied], 30)
        assert await recent_checks(conn, [], 30) == {}
        assert await recent_checks(conn, [three], 0) == {three: []}
        just_two = await recent_checks(conn, [tied], 2)
    assert got[none] == []
    assert [c["run_key"] for c in got[three]] == [f"{three}-0", f"{three}-1", f"{three}-2"]
    assert len(got[forty]) == 30
    assert [c["checked_at"] for c in got[forty]] == [
        T0 + timedelta(minutes=m) for m in range(10, 40)
    ]  # the newest 30, oldest first
    assert got[forty][-1] == {
        "checked_at": T0 + timedelta(minutes=39), "run_key": f"{forty}-39",
        "outcome": "down", "status_up": False, "latency_ms": 39.0,
    }  # fmt: skip
    # the outcome stored, else status_up's (rows from before conditions have none)
    assert [c["outcome"] for c in got[forty][23:]] == [
        "up",
        "up",
        "degraded",
        "up",
        "up",
        "up",
        "down",
    ]
    assert len(got[tied]) == 5
    # three results share the second newest time: still the newest 2, not 3
    assert [c["run_key"] for c in just_two[tied]] == [f"{tied}-3", f"{tied}-4"]


async def test_the_newest_results_of_each_device_oldest_first(engine: AsyncEngine) -> None:
    await assert_recent(engine)


@pytest.mark.postgres
async def test_the_newest_results_of_each_device_on_postgresql(
    pg_engine: AsyncEngine,  # noqa: F811
) -> None:
    await assert_recent(pg_engine)
