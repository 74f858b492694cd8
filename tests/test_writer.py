"""Group commit: many concurrent writers, one transaction per batch, idempotent on run_key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.models import CheckResult
from storage.repo import count_checks, get_check_by_run_key
from storage.writer import BatchWriter, WriterClosedError


def row(key: str, device_id: int = 1, up: bool = True) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "status_up": up,
        "latency_ms": 1.5,
        "checked_at": datetime.now(UTC),
        "run_key": key,
        "slot_at": None,
        "status_code": 200 if up else 500,
        "error_kind": None,
        "error": None,
        "source": "manual",
    }


def writer(engine: AsyncEngine, **kw: Any) -> BatchWriter:
    return BatchWriter(engine, CheckResult.__table__, "run_key", **kw)  # type: ignore[attr-defined]


async def count(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return await count_checks(session)


async def test_concurrent_writes_are_grouped_into_few_transactions(engine: AsyncEngine) -> None:
    w = writer(engine, batch_size=100, flush_ms=20)
    await asyncio.gather(*(w.write(row(f"k{i}")) for i in range(500)))
    await w.close()
    assert await count(engine) == 500
    assert w.rows_written == 500
    assert w.batches_written <= 10  # 500 rows in batches of up to 100


async def test_the_same_run_stored_twice_keeps_one_row(engine: AsyncEngine) -> None:
    w = writer(engine)
    await w.write(row("dup", up=True))
    await asyncio.gather(w.write(row("dup", up=False)), w.write(row("dup", up=False)))
    await w.close()
    assert await count(engine) == 1
    async with session_factory(engine)() as session:
        stored = await get_check_by_run_key(session, "dup")
    assert stored is not None and stored.status_up is True  # the first write wins


async def test_write_returns_only_after_the_row_is_committed(engine: AsyncEngine) -> None:
    w = writer(engine, flush_ms=50)
    await w.write(row("visible"))
    # A separate connection sees it at once: the commit happened before write() returned.
    async with session_factory(engine)() as session:
        assert await get_check_by_run_key(session, "visible") is not None
    await w.close()


async def test_times_come_back_as_aware_utc(engine: AsyncEngine) -> None:
    w = writer(engine)
    await w.write(row("tz"))
    await w.close()
    async with session_factory(engine)() as session:
        stored = await get_check_by_run_key(session, "tz")
    assert stored is not None and stored.checked_at.tzinfo is UTC


async def test_a_naive_datetime_is_refused_and_the_waiter_learns_why(engine: AsyncEngine) -> None:
    w = writer(engine)
    bad = row("naive") | {"checked_at": datetime(2026, 1, 1)}  # noqa: DTZ001
    with pytest.raises(Exception, match="naive datetime"):
        await w.write(bad)
    await w.write(row("after"))  # the writer survives a failed batch
    await w.close()
    assert await count(engine) == 1


async def test_a_closed_writer_refuses_rows(engine: AsyncEngine) -> None:
    w = writer(engine)
    await w.close()
    with pytest.raises(WriterClosedError):
        await w.write(row("late"))


def test_nul_characters_are_scrubbed_from_text_values() -> None:
    from storage.writer import scrub_nul

    assert scrub_nul({"a": "x\x00y", "b": None, "c": 3}) == {"a": "xy", "b": None, "c": 3}
