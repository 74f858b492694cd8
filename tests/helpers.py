"""Small async helpers for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import nats
from nats.aio.msg import Msg
from sqlmodel import select
from taskiq.api import run_receiver_task

from core.natsconn import subscribe_ready
from core.settings import Settings
from jobs.queue.broker import FleetprobeBroker, make_broker
from jobs.worker import register_tasks
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult, Device


async def wait_for(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, worker: bool = True
) -> AsyncIterator[FleetprobeBroker]:
    """A broker started in this process, with an in-process receiver when ``worker``."""
    broker = make_broker(settings, name="test")
    register_tasks(broker)
    broker.is_worker_process = worker
    await broker.startup()
    task = None
    if worker:
        task = asyncio.create_task(run_receiver_task(broker, max_async_tasks=50))
    try:
        yield broker
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await broker.shutdown()


@contextlib.asynccontextmanager
async def collect_events(settings: Settings) -> AsyncIterator[list[dict[str, Any]]]:
    """Every event published on the test's events subject, decoded."""
    nc = await nats.connect(settings.nats_url)
    events: list[dict[str, Any]] = []

    async def on_msg(msg: Msg) -> None:
        events.append(json.loads(msg.data))

    await subscribe_ready(nc, settings.events_subject, cb=on_msg)
    try:
        yield events
    finally:
        await nc.close()


async def add_devices(settings: Settings, address: str, n: int, interval: int) -> None:
    """``n`` active devices probing ``address`` every ``interval`` s, in a fresh database."""
    engine = make_engine(settings)
    await init_db(engine)
    async with session_factory(engine)() as session:
        for i in range(n):
            session.add(
                Device(name=f"d{i}", address=address, interval_seconds=interval, timeout_seconds=2)
            )
        await session.commit()
    await engine.dispose()


async def stored_checks(settings: Settings) -> list[CheckResult]:
    """Every stored check result (through a short-lived engine of its own)."""
    engine = make_engine(settings)
    async with session_factory(engine)() as session:
        rows = list((await session.exec(select(CheckResult))).all())
    await engine.dispose()
    return rows


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


def row_id(row: _Stored) -> int:
    """The id of a row read back from (or committed to) the database: always set there,
    though the model types it ``int | None`` for rows not yet inserted."""
    assert row.id is not None, row
    return row.id
