"""The work counters of real `taskiq worker` processes reach the web process's
``/metrics`` over NATS, and stay counted after the worker stops and another replaces it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult, Device
from tests.conftest import isolated_env
from tests.helpers import running_worker, wait_for
from tests.processes import Proc, taskiq_worker
from tests.web.test_metrics import Samples, key, scrape
from tests.webapp import served

pytestmark = pytest.mark.slow

PROBES_UP = key("fleetprobe_probes_total", outcome="up")
DURATIONS = key("fleetprobe_probe_duration_seconds_count")
LATENESS = key("fleetprobe_slot_lateness_seconds_count")
WORKERS = key("fleetprobe_metrics_workers")


async def _ready(proc: Proc) -> bool:
    return "listening stream=" in proc.output()


async def test_worker_counters_reach_the_scrape_and_survive_a_worker_restart(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path, METRICS_PUSH_SECONDS="0.3")
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Device(name="d", address=f"{http_target}/ok", interval_seconds=1))
        await session.commit()

    async def stored() -> int:
        async with sessions() as session:
            return len((await session.exec(select(CheckResult))).all())

    first = taskiq_worker(env, tmp_path / "w1.log")
    second: Proc | None = None
    try:
        # The web process has no worker of its own: whatever it counts came over NATS.
        async with served(settings, engine) as web:
            _, before = await scrape(web.client)

            def grew(samples: Samples, k: tuple[str, tuple[tuple[str, str], ...]]) -> float:
                return samples[k] - before.get(k, 0.0)

            await wait_for(lambda: _ready(first), timeout=30, what="worker 1 ready")
            async with running_worker(settings, worker=False) as broker:
                scheduler = ProbeScheduler(settings, broker, engine)
                await scheduler.start()
                await asyncio.sleep(2.5)
                await scheduler.stop()
            await wait_for(lambda: _at_least(stored, 2), timeout=20, what="scheduled results")
            await asyncio.sleep(0.5)  # a slot kicked last may still be running
            n = await stored()

            async def counted(total: int) -> bool:
                _, now = await scrape(web.client)
                return grew(now, PROBES_UP) == total and grew(now, DURATIONS) == total

            await wait_for(lambda: counted(n), timeout=20, what=f"{n} probes on /metrics")
            _, now = await scrape(web.client)
            assert grew(now, LATENESS) == n  # scheduled slots: each one's lateness
            assert now[WORKERS] == 1

            assert first.stop() == 0  # its last snapshot goes out as it stops
            _, now = await scrape(web.client)
            assert grew(now, PROBES_UP) == n  # a stopped worker's counts stay

            second = taskiq_worker(env, tmp_path / "w2.log")
            await wait_for(lambda: _ready(second), timeout=30, what="worker 2 ready")
            r = await web.client.post("/jobs/probe", params={"wait": "true"}, json={})
            assert r.status_code == 200 and r.json()["complete"] is True, r.text
            await wait_for(lambda: counted(n + 1), timeout=20, what="the new worker's probe")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await engine.dispose()


async def _at_least(count: object, n: int) -> bool:
    return await count() >= n  # type: ignore[operator,no-any-return]
