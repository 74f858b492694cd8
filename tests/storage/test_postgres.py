"""The storage layer on PostgreSQL (``DATABASE_URL=postgresql+asyncpg://...``).

Uses the server at 127.0.0.1:5432 (trust auth, database ``test``), in a database of its
own created and dropped by the fixture.  Skips with a reason when no server answers,
except under CI=true, where a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult, Device
from storage.repo import count_checks, delete_device, insert_device_check, list_checks
from storage.writer import BatchWriter

pytestmark = pytest.mark.postgres

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def empty_database() -> AsyncIterator[str]:
    """The URL of a database of its own, created empty and dropped afterwards."""
    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with asyncio.timeout(5), admin.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        await admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"PostgreSQL required under CI=true but not reachable at {ADMIN_URL}: {exc}"
            )
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    name = f"fleetprobe_{uuid.uuid4().hex[:12]}"
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    async with empty_database() as url:
        engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await init_db(engine)
            yield engine
        finally:
            await engine.dispose()


async def test_hosts_starting_together_create_the_tables_once_without_error() -> None:
    """Every process runs init_db at start; on a new database they race to create it."""
    for _ in range(5):
        async with empty_database() as url:
            engines = [make_engine(Settings(DATABASE_URL=url)) for _ in range(4)]  # type: ignore[call-arg]
            try:
                await asyncio.gather(*(init_db(engine) for engine in engines))
                async with session_factory(engines[0])() as session:
                    assert await count_checks(session) == 0  # the tables are there
            finally:
                for engine in engines:
                    await engine.dispose()


def row(key: str, device_id: int) -> dict[str, object]:
    return {
        "device_id": device_id,
        "status_up": True,
        "latency_ms": 2.0,
        "checked_at": datetime.now(UTC),
        "run_key": key,
        "slot_at": None,
        "status_code": 200,
        "error_kind": None,
        "error": None,
        "source": "manual",
    }


async def test_postgres_batches_are_idempotent_and_times_stay_utc(pg_engine: AsyncEngine) -> None:
    sessions = session_factory(pg_engine)
    async with sessions() as session:
        device = Device(name="pg", address="http://127.0.0.1/")
        session.add(device)
        await session.commit()
        await session.refresh(device)
    assert device.id is not None
    writer = BatchWriter(pg_engine, CheckResult.__table__, "run_key")  # type: ignore[attr-defined]
    keys = [f"k{i % 50}" for i in range(200)]  # every run delivered four times
    await asyncio.gather(*(writer.write(row(k, device.id)) for k in keys))
    await writer.close()
    async with sessions() as session:
        assert await count_checks(session, device.id) == 50
        newest = await list_checks(session, device.id, limit=5)
        assert len(newest) == 5 and all(c.checked_at.tzinfo is not None for c in newest)
        await delete_device(session, device)
    async with sessions() as session:
        assert await count_checks(session) == 0


async def test_text_with_nul_characters_is_stored_without_them(pg_engine: AsyncEngine) -> None:
    writer = BatchWriter(pg_engine, CheckResult.__table__, "run_key")  # type: ignore[attr-defined]
    await writer.write(row("nul", 1) | {"error": "reset\x00by peer"})
    await writer.close()
    async with session_factory(pg_engine)() as session:
        stored = (await list_checks(session, 1, limit=1))[0]
    assert stored.error == "resetby peer"


class HeldCommit(AsyncSession):
    """A session whose commit waits for ``release``: its transaction stays open."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def commit(self) -> None:
        self.holding.set()
        await self.release.wait()
        await super().commit()


async def lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await conn.execute(query)).scalar_one())


async def test_a_check_for_a_device_being_deleted_is_not_stored(pg_engine: AsyncEngine) -> None:
    """A manual check arrives while the device's deletion is not committed yet: it waits
    for the deletion and stores nothing, instead of leaving a check without its device."""
    async with session_factory(pg_engine)() as session:
        device = Device(name="pg", address="http://127.0.0.1/")
        session.add(device)
        await session.commit()
        await session.refresh(device)
    assert device.id is not None
    async with HeldCommit(pg_engine) as deleting:
        doomed = await deleting.get(Device, device.id)
        assert doomed is not None
        deletion = asyncio.create_task(delete_device(deleting, doomed))
        await asyncio.wait_for(deleting.holding.wait(), 10)
        insert = asyncio.create_task(insert_device_check(pg_engine, row("raced", device.id)))
        async with asyncio.timeout(10):
            while not insert.done() and await lock_waits(pg_engine) == 0:
                await asyncio.sleep(0.02)
        deleting.release.set()
        await deletion
    assert await insert is None
    async with session_factory(pg_engine)() as session:
        assert await count_checks(session) == 0
