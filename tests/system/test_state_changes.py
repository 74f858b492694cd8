"""A target that goes down and comes back, probed every second by two ``taskiq worker``
processes (results stored by both, in any order): exactly one ``device.state_changed``
to down and one back up, and one incident."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage import health as store
from storage.db import init_db, make_engine, session_factory
from storage.models import Device, DeviceHealth
from storage.types import utcnow
from tests import targets
from tests.conftest import isolated_env
from tests.helpers import collect_events, running_worker, wait_for
from tests.processes import running, taskiq_worker

pytestmark = pytest.mark.slow


async def test_a_flapping_target_gives_one_down_one_up_and_one_incident(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    name = uuid.uuid4().hex[:8]
    sessions = session_factory(engine)
    async with sessions() as session:
        device = Device(
            name="flap",
            address=f"{http_target}/switch/{name}",
            interval_seconds=1,
            timeout_seconds=2,
            failure_threshold=2,
        )
        session.add(device)
        await session.commit()
        assert device.id is not None
        device_id = device.id
        # Two more devices a second, each at its own phase. The server hands each message
        # to the pull request that waited longest, so the two workers mostly take turns
        # over the messages of one second in their fixed order: with an even number of
        # devices each device would stay with one worker, and a lone device's messages
        # can lock onto one worker's fetch cycle for minutes. Three devices: the flapping
        # one is stored by both.
        session.add_all(
            Device(name=f"filler{i}", address=f"{http_target}/ok", interval_seconds=1)
            for i in range(2)
        )
        await session.commit()

    async def state_is(wanted: str) -> bool:
        async with sessions() as session:
            row = await session.get(DeviceHealth, device_id)
        return row is not None and row.state == wanted

    w1 = taskiq_worker(env, tmp_path / "w1.log")
    w2 = taskiq_worker(env, tmp_path / "w2.log")
    with running(w1, w2):
        async with (
            collect_events(settings) as events,
            running_worker(settings, worker=False) as broker,
        ):
            for w in (w1, w2):
                await wait_for(partial(_ready, w), timeout=30, what=f"{w.log.name} ready")
            scheduler = ProbeScheduler(settings, broker, engine)
            await scheduler.start()
            try:
                await wait_for(lambda: state_is("up"), timeout=30, what="up")

                async def both_workers_stored() -> bool:
                    stored = {
                        e["payload"]["worker"]
                        for e in events
                        if e["type"] == "check.created" and e["payload"]["device_id"] == device_id
                    }
                    return len(stored) == 2

                # Pull consumers take whatever they fetch first: go on probing until each
                # process has stored results, so the flip runs across both.
                await wait_for(both_workers_stored, timeout=60, what="results of both workers")
                targets.switches[name] = 500
                await wait_for(lambda: state_is("down"), timeout=30, what="down")
                targets.switches[name] = 200
                await wait_for(lambda: state_is("up"), timeout=30, what="up again")
                await asyncio.sleep(2.0)  # a few more passing results: nothing changes
            finally:
                await scheduler.stop()
                targets.switches.pop(name, None)
            await asyncio.sleep(1.0)  # what was in flight is stored and announced

        def changed() -> list[dict[str, Any]]:
            return [
                e["payload"]
                for e in events
                if e["type"] == "device.state_changed" and e["payload"]["device_id"] == device_id
            ]

        transitions = [(p["from"], p["to"]) for p in changed()]
        assert transitions == [("unknown", "up"), ("up", "down"), ("down", "up")], changed()
        assert all(p["device_id"] == device_id and p["run_key"] for p in changed())
        checks = [
            e["payload"]
            for e in events
            if e["type"] == "check.created" and e["payload"]["device_id"] == device_id
        ]
        workers = {c["worker"] for c in checks}
        assert len(workers) == 2, workers  # both processes stored results

    async with engine.connect() as conn:
        rows = await store.list_changes(conn, device_id, limit=10)
        edges = await store.list_down_edges(conn, device_id, limit=10)
    assert [(r.from_state, r.to_state) for r in reversed(rows)] == transitions
    [incident] = store.incidents_of(edges, utcnow())
    assert incident.ended_at is not None and incident.duration_seconds > 0
    assert incident.cause is not None and "500" in incident.cause
    await engine.dispose()


async def _ready(proc: object) -> bool:
    return "listening stream=" in proc.output()  # type: ignore[attr-defined]
