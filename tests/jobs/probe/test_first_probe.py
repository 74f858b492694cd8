"""A device new to the schedule is probed at once, beside its slots (real nats-server,
SQLite and a local HTTP target): created through ``POST /devices`` with an hour's interval,
re-activated, or given a new address; once even with two schedulers; and a restart of the
scheduler probes no device that way."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.settings import Settings
from jobs.probe.job import first_key, load_specs
from jobs.probe.scheduler import ProbeScheduler
from jobs.scheduling.lease import LeaderLease
from storage.db import session_factory
from storage.models import CheckResult, Device
from storage.types import utcnow
from tests.helpers import collect_events, running_worker, wait_for
from tests.webapp import WebApp, serve_app

HOUR = 3600


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[Client]:
    client = await nats.connect(settings.nats_url)
    yield client
    await client.close()


async def checks_of(engine: AsyncEngine, device_id: int) -> list[CheckResult]:
    async with session_factory(engine)() as session:
        stmt = select(CheckResult).where(col(CheckResult.device_id) == device_id)
        return list((await session.exec(stmt.order_by(col(CheckResult.id)))).all())


async def wait_checks(engine: AsyncEngine, device_id: int, n: int, what: str) -> list[CheckResult]:
    async def enough() -> bool:
        return len(await checks_of(engine, device_id)) >= n

    await wait_for(enough, timeout=15, what=what)
    return await checks_of(engine, device_id)


@contextlib.asynccontextmanager
async def scheduler_and_app(
    settings: Settings, engine: AsyncEngine, nc: Client
) -> AsyncIterator[tuple[ProbeScheduler, WebApp]]:
    """A worker, a started probe scheduler (no lease: it leads) and the web app on it."""
    async with running_worker(settings) as broker:
        scheduler = ProbeScheduler(
            settings, broker, engine, nc, installation=broker.installation_id
        )
        await scheduler.start()
        try:
            async with serve_app(settings, engine, broker, scheduler=scheduler) as web:
                yield scheduler, web
        finally:
            await scheduler.stop()


async def current_key(engine: AsyncEngine, settings: Settings, device_id: int) -> str:
    """The run key of the immediate probe of the device as stored now."""
    specs = await load_specs(engine, settings, ids=[device_id])
    return first_key(specs[device_id])


async def test_a_device_posted_with_an_hour_interval_is_probed_at_once(
    settings: Settings, engine: AsyncEngine, nc: Client, http_target: str
) -> None:
    assert settings.monitor_period_seconds == HOUR  # the default a user meets
    async with scheduler_and_app(settings, engine, nc) as (scheduler, web):
        body = {"name": "new", "address": f"{http_target}/ok"}
        device = (await web.client.post("/devices", json=body)).json()
        assert device["interval_seconds"] is None  # MONITOR_PERIOD_SECONDS
        rows = await wait_checks(engine, device["id"], 1, "the first result")
        key = await current_key(engine, settings, device["id"])
        (status,) = (await web.client.get("/status")).json()
    (row,) = rows
    assert row.run_key == key and key.startswith(f"probe:{device['id']}:new:")
    assert (row.source, row.slot_at, row.status_up) == ("schedule", None, True)
    assert (scheduler.first_wanted, scheduler.first_kicks) == (1, 1)
    assert scheduler.registered[device["id"]].interval == HOUR  # its slots go on hourly
    assert status["device_id"] == device["id"] and status["state"] == "up"  # not unknown


async def test_re_activating_or_readdressing_probes_at_once_a_new_interval_or_name_does_not(
    settings: Settings, engine: AsyncEngine, nc: Client, http_target: str
) -> None:
    async with scheduler_and_app(settings, engine, nc) as (scheduler, web):
        body = {"name": "p", "address": f"{http_target}/ok", "is_active": False}
        device_id = (await web.client.post("/devices", json=body)).json()["id"]
        one = f"/devices/{device_id}"
        # Paused: not scheduled, nothing kicked (decided before the answer).
        await web.client.patch(one, json={"name": "still paused"})
        assert device_id not in scheduler.registered and scheduler.first_wanted == 0

        await web.client.patch(one, json={"is_active": True})
        assert scheduler.first_wanted == 1
        rows = await wait_checks(engine, device_id, 1, "a probe on re-activation")
        resumed = await current_key(engine, settings, device_id)

        # Its interval or name alone: its slots, no immediate probe.
        await web.client.patch(one, json={"interval_seconds": 1800, "name": "q"})
        assert scheduler.registered[device_id].interval == 1800
        assert scheduler.first_wanted == 1

        await web.client.patch(one, json={"address": f"{http_target}/status/503"})
        assert scheduler.first_wanted == 2
        rows = await wait_checks(engine, device_id, 2, "a probe of the new address")
        readdressed = await current_key(engine, settings, device_id)
    assert [(r.run_key, r.status_up) for r in rows] == [(resumed, True), (readdressed, False)]
    assert resumed != readdressed
    assert scheduler.first_kicks == 2


async def test_two_schedulers_kicking_the_immediate_probe_give_one_run(
    settings: Settings, engine: AsyncEngine, nc: Client, http_target: str
) -> None:
    """No lease: both act as leader, both kick; the shared run key leaves one message."""
    async with running_worker(settings) as broker, collect_events(settings) as events:
        a = ProbeScheduler(settings, broker, engine, nc, installation=broker.installation_id)
        b = ProbeScheduler(settings, broker, engine, nc, installation=broker.installation_id)
        await a.start()
        await b.start()
        try:
            # A web app of its own process: the schedulers hear of the device by the event.
            async with serve_app(settings, engine, broker) as web:
                body = {"name": "twice", "address": f"{http_target}/ok"}
                device_id = (await web.client.post("/devices", json=body)).json()["id"]

                async def both_kicked() -> bool:
                    return a.first_kicks == 1 and b.first_kicks == 1

                await wait_for(both_kicked, timeout=15, what="both schedulers kick")
                rows = await wait_checks(engine, device_id, 1, "the result")
            stream = await nc.jetstream().stream_info(settings.jobs_stream)
        finally:
            await a.stop()
            await b.stop()
    key = await current_key(engine, settings, device_id)
    assert [r.run_key for r in rows] == [key]
    # Every message the stream ever stored: the one kick, plus any hourly slot that came
    # during the test (kicked by both under one key as well).
    assert stream.state.last_seq == 1 + max(a.kicks, b.kicks)
    created = [e for e in events if e["type"] == "check.created"]
    assert [e["payload"]["run_key"] for e in created].count(key) == 1


async def test_with_a_lease_only_the_leader_kicks_the_immediate_probe(
    settings: Settings, engine: AsyncEngine, nc: Client, http_target: str
) -> None:
    bucket = f"lease_{uuid.uuid4().hex[:8]}"
    async with running_worker(settings) as broker:
        leader = ProbeScheduler(
            settings,
            broker,
            engine,
            nc,
            installation=broker.installation_id,
            lease=LeaderLease(nc.jetstream(), bucket, "a", ttl=30),
        )
        follower = ProbeScheduler(
            settings,
            broker,
            engine,
            nc,
            installation=broker.installation_id,
            lease=LeaderLease(nc.jetstream(), bucket, "b", ttl=30),
        )
        await leader.start()
        await follower.start()
        try:
            assert leader.is_leader and not follower.is_leader
            # The follower's own web app tells it first; the leader hears the event.
            async with serve_app(settings, engine, broker, scheduler=follower) as web:
                body = {"name": "led", "address": f"{http_target}/ok"}
                device_id = (await web.client.post("/devices", json=body)).json()["id"]
                assert device_id in follower.registered
                rows = await wait_checks(engine, device_id, 1, "the leader's kick")
        finally:
            await follower.stop()
            await leader.stop()
    assert [r.run_key for r in rows] == [await current_key(engine, settings, device_id)]
    assert (leader.first_wanted, leader.first_kicks) == (1, 1)
    assert (follower.first_wanted, follower.first_kicks) == (0, 0)


async def add_device(engine: AsyncEngine, **fields: Any) -> int:
    async with session_factory(engine)() as session:
        device = Device(**fields)
        session.add(device)
        await session.commit()
        await session.refresh(device)
        assert device.id is not None
        return device.id


async def test_a_restart_probes_no_device_at_once_only_those_that_appear_while_it_runs(
    settings: Settings, engine: AsyncEngine, nc: Client, http_target: str
) -> None:
    for i in range(20):  # never probed: a fresh import, a restart before their first slot
        await add_device(engine, name=f"d{i}", address=f"{http_target}/ok", interval_seconds=HOUR)
    bucket = f"lease_{uuid.uuid4().hex[:8]}"
    async with running_worker(settings, worker=False) as broker:
        for run in ("first", "restart"):
            lease = LeaderLease(nc.jetstream(), bucket, run, ttl=30)
            scheduler = ProbeScheduler(
                settings, broker, engine, nc, installation=broker.installation_id, lease=lease
            )
            await scheduler.start()
            try:
                assert scheduler.is_leader and len(scheduler.registered) >= 20
                await scheduler.sync()  # the periodic resync: nothing new either
                assert (scheduler.first_wanted, scheduler.fresh) == (0, {})
                # One added behind the API's back, found by the resync: probed at once.
                await add_device(engine, name=run, address=f"{http_target}/ok")
                await scheduler.sync()
                assert scheduler.first_wanted == 1

                async def kicked(s: ProbeScheduler = scheduler) -> bool:
                    return s.first_kicks == 1

                await wait_for(kicked, what="the new device's probe kicked")
            finally:
                await scheduler.stop()  # releases the lease: the next run leads at once


async def test_devices_appearing_by_the_hundred_are_probed_at_most_100_a_second(
    settings: Settings, engine: AsyncEngine, nc: Client
) -> None:
    """A bulk import behind the API's back, found by the resync: the immediate probes are
    spread out (``first_probes_per_second``, counted on the scheduler's clock)."""
    now = [utcnow()]
    async with running_worker(settings, worker=False) as broker:  # kicks, never runs
        scheduler = ProbeScheduler(
            settings, broker, engine, nc, installation=broker.installation_id, clock=lambda: now[0]
        )
        await scheduler.start()
        try:
            async with session_factory(engine)() as session:
                for i in range(250):
                    session.add(Device(name=f"bulk{i}", address="http://127.0.0.1:9/"))
                await session.commit()
            await scheduler.sync()
            assert scheduler.first_wanted == 250

            async def kicked(n: int) -> bool:
                return scheduler.first_kicks == n and len(scheduler.fresh) == 250 - n

            await wait_for(lambda: kicked(100), what="this second's 100")
            assert await scheduler.kick_fresh() == 0  # the clock's second is spent
            now[0] += timedelta(seconds=1)
            await wait_for(lambda: kicked(200), what="the next second's 100")
            assert await scheduler.kick_fresh() == 0
            assert scheduler.first_kicks == 200
        finally:
            await scheduler.stop()
