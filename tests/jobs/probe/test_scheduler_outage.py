"""The probe scheduler's counters tell the truth through a NATS outage: a slot it could
not kick because the queue was away is counted (``missed_queue_down`` in the exit
summary), also after its leader lease lapsed in that outage (no one kicks then)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import pytest

from core.natsconn import close_quietly
from core.natsserver import free_port, start_nats_server
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from jobs.scheduling.lease import owned_lease
from storage.db import init_db, make_engine, session_factory
from storage.models import Device
from tests.conftest import isolated_env
from tests.helpers import running_worker, wait_for


def now_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def predicate() -> bool:
        return check()

    return predicate


async def test_slots_missed_after_the_lease_lapsed_in_an_outage_are_counted(
    tmp_path: Path, http_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A server of the test's own, to take away.
    server = start_nats_server("127.0.0.1", free_port(), tmp_path / "store")
    settings = Settings(
        **isolated_env(server.url, tmp_path, LEADER_LEASE_SECONDS="3", LEADER_BUCKET="lb_out")  # type: ignore[arg-type]
    )
    engine = make_engine(settings)
    await init_db(engine)
    async with session_factory(engine)() as session:
        session.add(Device(name="d", address=f"{http_target}/", interval_seconds=1))
        await session.commit()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1)
    try:
        async with running_worker(settings, worker=False) as broker:
            lease = await owned_lease(nc.jetstream(), settings, broker.installation_id, "s")
            scheduler = ProbeScheduler(settings, broker, engine, lease=lease)
            await scheduler.start()
            await wait_for(now_true(lambda: scheduler.kicks >= 1), timeout=30, what="a kick")
            server.stop()
            await wait_for(now_true(lambda: lease.lapsed), timeout=30, what="the lease lapsing")
            at_lapse = scheduler.missed
            # Every slot from here on is one nobody kicked: each is counted.
            await wait_for(
                now_true(lambda: scheduler.missed >= at_lapse + 3),
                timeout=30,
                what="slots counted missed after the lapse",
            )
            caplog.set_level(logging.INFO)
            await scheduler.stop()
            assert scheduler.kick_failures == 0  # missed, not failed: nothing was tried
    finally:
        server.stop()
        await close_quietly(nc)
        await engine.dispose()
    # The stop waited for a lease refresh under way (bounded, NATS away) instead of
    # cancelling it: APScheduler says a cancelled job as an ERROR with a traceback.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [e for e in errors if "raised an exception" in e], errors
