"""Group commit: many concurrent writers, one transaction per batch, idempotent on run_key."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.models import CheckResult
from storage.repo import count_checks, get_check_by_run_key
from storage.writer import BatchWriter, WriterClosedError, _transient


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


async def test_write_says_whether_its_row_was_inserted(engine: AsyncEngine) -> None:
    w = writer(engine, batch_size=10, flush_ms=20)
    first = await w.write(row("once", up=True))
    # A redelivery later, and two attempts landing in the same batch.
    later, *same_batch = await asyncio.gather(
        w.write(row("once", up=False)), w.write(row("twice")), w.write(row("twice"))
    )
    await w.close()
    async with session_factory(engine)() as session:
        once = await get_check_by_run_key(session, "once")
        twice = await get_check_by_run_key(session, "twice")
    assert once is not None and first == once.id and later is None
    assert twice is not None and sorted(same_batch, key=str) == [twice.id, None]
    assert w.rows_written == 2


async def test_more_rows_than_a_batch_are_all_written_in_full_batches(engine: AsyncEngine) -> None:
    w = writer(engine, batch_size=7, flush_ms=10_000)  # only full batches and close() flush
    ids = await asyncio.gather(*(w.write(row(f"b{i}")) for i in range(21)))
    assert w.batches_written == 3 and len(set(ids)) == 21 and None not in ids
    pending = asyncio.ensure_future(w.write(row("last")))
    await asyncio.sleep(0.05)
    assert not pending.done()  # waits for the flush window...
    await w.close()  # ...or for close(), which flushes it
    assert await pending is not None
    assert await count(engine) == 22


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


async def test_hooks_see_only_the_rows_that_landed_in_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    seen: list[list[str]] = []
    announced: list[str] = []
    counts_inside: list[int] = []

    async def hook(conn: Any, rows: Any) -> Any:
        seen.append([r["run_key"] for r in rows])
        # The batch's own insert is visible: the hook runs in its transaction.
        counts_inside.append(
            (await conn.exec_driver_sql("SELECT count(*) FROM check_results")).scalar_one()
        )

        async def announce() -> None:
            announced.extend(r["run_key"] for r in rows)

        return announce

    w = writer(engine, batch_size=10, flush_ms=20, after_insert=[hook])
    await w.write(row("a"))
    await asyncio.gather(w.write(row("a")), w.write(row("b")), w.write(row("b")))
    await w.close()
    assert seen == [["a"], ["b"]]  # a redelivered key reaches no hook twice
    assert announced == ["a", "b"]
    assert counts_inside == [1, 2]


async def test_a_failing_hook_rolls_the_batch_back_and_every_waiter_learns_why(
    engine: AsyncEngine,
) -> None:
    async def hook(conn: Any, rows: Any) -> Any:
        raise ValueError("health update failed")

    w = writer(engine, retries=1, after_insert=[hook])
    with pytest.raises(ValueError, match="health update failed"):
        await w.write(row("x"))
    await w.close()
    assert await count(engine) == 0


@pytest.mark.postgres
async def test_two_writers_storing_the_same_keys_in_opposite_orders_do_not_deadlock(
    pg: tuple[AsyncEngine, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    """A redelivered batch stored by two workers at once: every writer inserts its keys
    in one order, so PostgreSQL never picks a deadlock victim (nor does one need a retry).
    2,000 rows a batch are two statements of SQLAlchemy's 1,000-row insertmanyvalues
    pages: in opposite orders each transaction would hold half the keys the other wants."""
    first, second = pg
    caplog.set_level(logging.WARNING, logger="storage.writer")
    for rnd in range(3):
        keys = [f"k{rnd}-{i:04d}" for i in range(2000)]
        a = writer(first, batch_size=2000, flush_ms=5)
        b = writer(second, batch_size=2000, flush_ms=5)
        try:
            await asyncio.gather(
                *(a.write(row(k)) for k in keys), *(b.write(row(k)) for k in reversed(keys))
            )
        finally:
            await a.close()
            await b.close()
        assert a.rows_written + b.rows_written == 2000
    assert await count(first) == 6000
    assert not [r.getMessage() for r in caplog.records], "a batch was retried or failed"


class _PgError(Exception):
    def __init__(self, sqlstate: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "text", "retry"),
    [
        ("40P01", "deadlock detected", True),
        ("40001", "could not serialize access due to concurrent update", True),
        ("23502", 'null value in column "device_id" violates not-null constraint', False),
        ("42P01", 'relation "check_results" does not exist', False),
        (None, "database is locked", True),
    ],
)
def test_which_database_errors_are_written_again(
    sqlstate: str | None, text: str, retry: bool
) -> None:
    orig = _PgError(sqlstate, text) if sqlstate else Exception(text)
    assert _transient(DBAPIError("INSERT ...", None, orig)) is retry
