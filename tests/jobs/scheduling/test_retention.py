"""The retention job prunes only in the leading scheduler, logs one line per run, and is
on the probe scheduler's schedule every RETENTION_INTERVAL_SECONDS."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from jobs.queue.broker import make_broker
from jobs.scheduling.retention import RetentionJob
from storage import repo
from storage.db import session_factory
from storage.models import CheckResult

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHECKS = CheckResult.__table__  # type: ignore[attr-defined]


async def seed(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        device = await repo.create_device(session, name="d", address="http://x.test/")
    rows: list[dict[str, Any]] = [
        {"device_id": device.id, "status_up": True, "checked_at": NOW - timedelta(days=d),
         "run_key": f"k{d}", "source": "schedule"}
        for d in (1, 29, 31, 90)
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(CHECKS.insert(), rows)


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(CHECKS))).scalar_one())


async def test_only_the_leader_prunes_and_it_logs_one_line_with_counts(
    engine: AsyncEngine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(engine)
    leading = False
    job = RetentionJob(settings, engine, lambda: leading, clock=lambda: NOW)
    assert await job.run() is None
    assert await stored(engine) == 4 and job.runs == 0
    leading = True
    with caplog.at_level(logging.INFO, logger="jobs.scheduling.retention"):
        pruned = await job.run()
    assert pruned is not None and pruned.checks == 2 and await stored(engine) == 2
    [line] = [r.getMessage() for r in caplog.records if r.name == "jobs.scheduling.retention"]
    assert "checks_deleted=2 rollups_deleted=0" in line and "retention_days=30" in line


class NotLeading:
    is_leader = False


async def test_the_probe_scheduler_runs_retention_on_its_schedule_while_it_leads(
    engine: AsyncEngine, settings: Settings
) -> None:
    broker = make_broker(settings, name="test")  # never started: nothing is kicked
    scheduler = ProbeScheduler(settings, broker, engine)
    await scheduler.start()
    try:
        job = scheduler.scheduler.get_job("fleetprobe:retention")
        assert job is not None
        assert job.trigger.interval == timedelta(seconds=settings.retention_interval_seconds)
    finally:
        await scheduler.stop()
    assert scheduler.retention.is_leader()  # no lease: a single scheduler leads
    scheduler.lease = NotLeading()  # type: ignore[assignment]
    assert not scheduler.retention.is_leader()
