"""A batch of state changes handed to the alerts listener at once: the same ledger rows,
suppression and deliveries as one change at a time, for a few statements per batch (one
when no channel is active), whatever its size."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.alerts.enqueue import ChangeRecord, change_listener, enqueue_changes
from storage.alert_models import MaintenanceWindow
from storage.db import init_db, make_engine, session_factory
from storage.types import utcnow
from tests.conftest import isolated_env
from tests.helpers import running_worker
from tests.jobs.alerts.helpers import add_change, add_channel, add_device, eventually, notifications
from tests.jobs.alerts.receiver import receiver


@pytest.fixture
def alert_settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    env = isolated_env(nats_server.url, tmp_path, ALERT_RETRY_DELAYS_SECONDS="0.2")
    return Settings(**env)  # type: ignore[arg-type]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements (their first words) ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def down_changes(engine: AsyncEngine, devices: int) -> list[ChangeRecord]:
    return [
        await add_change(engine, await add_device(engine, name=f"d{n}"), 1, "up", "down")
        for n in range(devices)
    ]


async def test_a_mixed_batch_gets_the_rows_and_deliveries_of_one_change_at_a_time(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    now = utcnow()
    with receiver() as rx:
        default = await add_channel(engine, rx.url, name="default")
        chosen = await add_channel(engine, rx.url, name="chosen", is_default=False)
        await add_channel(engine, rx.url, name="off", is_active=False)  # default, inactive
        plain = await add_device(engine, name="plain")
        own = await add_device(engine, name="own", channel_ids=[chosen])
        snoozed = await add_device(engine, name="snoozed", snoozed_until=now + timedelta(hours=1))
        patched = await add_device(engine, name="patched")
        quiet = await add_device(engine, name="quiet", notify_on=["degraded"])
        async with session_factory(engine)() as session:
            session.add(
                MaintenanceWindow(
                    name="w",
                    device_ids=[patched],
                    start=now - timedelta(minutes=1),
                    duration_seconds=3600,
                    mode="suppress_alerts",
                )
            )
            await session.commit()
        batch = [
            await add_change(engine, device, 1, "up", "down")
            for device in (plain, own, snoozed, patched, quiet)
        ]
        gone = ChangeRecord(10_000, 10_000, 1, "up", "down", now)  # its device deleted
        async with running_worker(alert_settings) as broker:
            done = await enqueue_changes(engine, broker, [*batch, gone])
            await eventually(lambda: rx.count() >= 2, what="two deliveries")
            again = await enqueue_changes(engine, broker, batch)  # redelivered results
            await change_listener(engine, broker)(batch)  # as the health hook calls it
            await asyncio.sleep(1.0)  # a duplicate delivery, were one queued, would land now
        assert [(d.queued, d.suppressed, d.new_rows) for d in done] == [
            ([default], [], 1),
            ([chosen], [], 1),
            ([], [default], 1),
            ([], [default], 1),
            ([], [], 0),
            ([], [], 0),
        ]
        assert done[2].reason and done[2].reason.startswith("snoozed until")
        assert done[3].reason and done[3].reason.startswith("maintenance window")
        assert [d.new_rows for d in again] == [0] * 5
        assert rx.count() == 2
        got = sorted(r.body["state_change"]["id"] for r in rx.requests)
        assert got == [batch[0].id, batch[1].id]
        rows = await notifications(engine)
        assert sorted((r.state_change_id, r.channel_id, r.status) for r in rows) == [
            (batch[0].id, default, "sent"),
            (batch[1].id, chosen, "sent"),
            (batch[2].id, default, "suppressed"),
            (batch[3].id, default, "suppressed"),
        ]
    await engine.dispose()


async def test_with_no_active_channel_a_batch_costs_one_query(alert_settings: Settings) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    await add_channel(engine, "http://127.0.0.1:9/hook", is_active=False)
    batch = await down_changes(engine, 50)
    async with running_worker(alert_settings, worker=False) as broker:
        with statements(engine) as seen:
            done = await enqueue_changes(engine, broker, batch)
    assert seen == ["SELECT channels.id,"]
    assert all(d.queued == [] and d.suppressed == [] for d in done)
    assert await notifications(engine) == []
    await engine.dispose()


async def test_a_batchs_statements_do_not_grow_with_its_changes(alert_settings: Settings) -> None:
    """Channels, devices, windows read once; the ledger rows in one insert."""
    engine = make_engine(alert_settings)
    await init_db(engine)
    await add_channel(engine, "http://127.0.0.1:9/hook")
    one, many = await down_changes(engine, 1), await down_changes(engine, 60)
    async with running_worker(alert_settings, worker=False) as broker:
        with statements(engine) as of_one:
            await enqueue_changes(engine, broker, one)
        with statements(engine) as of_many:
            done = await enqueue_changes(engine, broker, many)
    assert of_one == of_many
    assert [s for s in of_many if s.startswith("INSERT")] == ["INSERT INTO"]
    assert all(d.new_rows == 1 for d in done)
    assert len(await notifications(engine)) == 61
    await engine.dispose()
