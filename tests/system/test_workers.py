"""Two `taskiq worker worker:broker` processes share one durable consumer: every scheduled
probe is run and stored exactly once, and both take part."""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from sqlmodel import select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult, Device
from tests.conftest import isolated_env
from tests.helpers import collect_events, running_worker, wait_for
from tests.processes import running, taskiq_worker

pytestmark = pytest.mark.slow


async def test_two_worker_processes_store_every_scheduled_probe_exactly_once(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        for i in range(20):
            session.add(
                Device(
                    name=f"d{i}",
                    address=f"{http_target}/slow?ms=50",
                    interval_seconds=1,
                    timeout_seconds=2,
                )
            )
        await session.commit()

    w1 = taskiq_worker(env, tmp_path / "w1.log")
    w2 = taskiq_worker(env, tmp_path / "w2.log")
    with running(w1, w2):
        async with (
            collect_events(settings) as events,
            running_worker(settings, worker=False) as broker,
        ):
            # Kick only once both workers are consuming, so both can take part.
            for w in (w1, w2):
                await wait_for(partial(_ready, w), timeout=30, what=f"{w.log.name} ready")
            scheduler = ProbeScheduler(settings, broker, engine)
            await scheduler.start()
            await asyncio.sleep(4.5)
            await scheduler.stop()
            kicked = scheduler.kicks
            assert kicked >= 60 and scheduler.kick_failures == 0

            async def all_stored() -> bool:
                async with sessions() as session:
                    rows = (await session.exec(select(CheckResult))).all()
                return len(rows) >= kicked

            await wait_for(all_stored, timeout=30, what=f"{kicked} stored results")
            await asyncio.sleep(1.0)  # anything extra (a duplicate) would land now

        async with sessions() as session:
            rows = (await session.exec(select(CheckResult))).all()
        assert len(rows) == kicked
        slots = Counter((r.device_id, r.slot_at) for r in rows)
        assert max(slots.values()) == 1
        assert all(r.status_up for r in rows)
        workers = Counter(e["payload"]["worker"] for e in events if e["type"] == "check.created")
        assert len(workers) == 2, workers  # both processes ran probes
        assert sum(workers.values()) == kicked
    await engine.dispose()


async def _ready(proc: object) -> bool:
    return "listening stream=" in proc.output()  # type: ignore[attr-defined]
