"""Garbage on NATS is logged and survived: the job subject and the events subject."""

from __future__ import annotations

import asyncio

import nats
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.settings import Settings
from jobs.probe.job import ProbeJobSpec, one_off_job
from jobs.probe.kick import kick_probe
from jobs.probe.scheduler import ProbeScheduler
from storage.db import session_factory
from storage.models import CheckResult, Device
from tests.helpers import running_worker, wait_for

GARBAGE = [
    b"",
    b"not json at all",
    b"\xff\xfe\x00binary",
    b'{"task_name": 12}',
    b'{"task_name": "fleetprobe.probe", "args": "not a list"}',
    b'{"task_name": "fleetprobe.probe", "task_id": "g1", "labels": {}, "args": [{"x": 1}],'
    b' "kwargs": {}}',
    b"[1, 2, 3]",
]


async def test_garbage_on_the_job_subject_is_dropped_and_work_goes_on(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    async with running_worker(settings) as broker:
        for i, body in enumerate(GARBAGE):
            await broker.js.publish(settings.jobs_subject, body, headers={"Nats-Msg-Id": f"g{i}"})
        spec = ProbeJobSpec(device_id=1, address=f"{http_target}/ok", interval=60, timeout=2)
        await kick_probe(broker, one_off_job(spec, "after-garbage", "manual"))

        async def stored() -> bool:
            async with session_factory(engine)() as session:
                rows = (await session.exec(select(CheckResult))).all()
            return len(rows) == 1

        await wait_for(stored, timeout=15, what="the valid probe after the garbage")
        await asyncio.sleep(0.5)
        info = await broker.js.stream_info(settings.jobs_stream)
        assert info.state.messages == 0  # nothing stuck, nothing redelivered for ever
    async with session_factory(engine)() as session:
        rows = (await session.exec(select(CheckResult))).all()
    assert [r.run_key for r in rows] == ["after-garbage"]


async def test_garbage_on_the_events_subject_leaves_the_scheduler_working(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    nc = await nats.connect(settings.nats_url)
    async with running_worker(settings, worker=False) as broker:
        scheduler = ProbeScheduler(
            settings, broker, engine, nc, installation=broker.installation_id
        )
        await scheduler.start()
        try:
            for body in [
                b"garbage",
                b'{"type": "device.updated"}',
                b'{"type": "device.updated", "payload": {"id": "x"}}',
                b'{"type": "device.deleted", "payload": null}',
                b"\xff",
            ]:
                await nc.publish(settings.events_subject, body)
            async with session_factory(engine)() as session:
                device = Device(name="late", address=f"{http_target}/ok", interval_seconds=30)
                session.add(device)
                await session.commit()
                await session.refresh(device)
            assert device.id is not None
            await nc.publish(
                settings.events_subject,
                b'{"type": "device.created", "payload": {"id": %d}}' % device.id,
            )

            async def scheduled() -> bool:
                return device.id in scheduler.registered

            await wait_for(scheduled, timeout=10, what="the device picked up after garbage")
        finally:
            await scheduler.stop()
            await nc.close()
