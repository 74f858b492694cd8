"""End to end in one process: devices scheduled, probes queued on JetStream, run by the
in-process worker, stored in SQLite, announced on the events subject."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.settings import Settings
from jobs.probe.job import ProbeJob
from jobs.probe.scheduler import ProbeScheduler
from jobs.probe.task import probe_device
from jobs.worker import WorkerRuntime
from storage.db import session_factory
from storage.models import CheckResult, Device
from tests.helpers import collect_events, running_worker, wait_for


async def add_device(engine: AsyncEngine, **fields: object) -> Device:
    async with session_factory(engine)() as session:
        device = Device(**fields)  # type: ignore[arg-type]
        session.add(device)
        await session.commit()
        await session.refresh(device)
        return device


async def results(engine: AsyncEngine) -> list[CheckResult]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(CheckResult))).all())


async def test_scheduled_devices_are_probed_stored_and_announced(
    settings: Settings, engine: AsyncEngine, http_target: str, closed_port_url: str
) -> None:
    up = await add_device(
        engine, name="up", address=f"{http_target}/ok", interval_seconds=1, timeout_seconds=2
    )
    down = await add_device(
        engine, name="down", address=f"{http_target}/fail", interval_seconds=1, timeout_seconds=2
    )
    gone = await add_device(
        engine, name="gone", address=closed_port_url, interval_seconds=1, timeout_seconds=2
    )
    await add_device(
        engine, name="inactive", address=f"{http_target}/ok", interval_seconds=1, is_active=False
    )

    async with collect_events(settings) as events, running_worker(settings) as broker:
        scheduler = ProbeScheduler(settings, broker, engine)
        await scheduler.start()
        try:

            async def each_probed_twice() -> bool:
                rows = await results(engine)
                return all(sum(r.device_id == d.id for r in rows) >= 2 for d in (up, down, gone))

            await wait_for(each_probed_twice, timeout=15, what="two results per device")
        finally:
            await scheduler.stop()

        rows = await results(engine)
        by_device = {d.id: [r for r in rows if r.device_id == d.id] for d in (up, down, gone)}
        assert all(r.status_up and r.status_code == 200 for r in by_device[up.id])
        assert all(not r.status_up and r.status_code == 500 for r in by_device[down.id])
        assert all(not r.status_up and r.error_kind == "refused" for r in by_device[gone.id])
        assert {r.device_id for r in rows} == {up.id, down.id, gone.id}
        # one row per (device, slot), and slots are the device's interval apart
        keys = [(r.device_id, r.slot_at) for r in rows]
        assert len(keys) == len(set(keys))
        assert all(r.slot_at is not None and r.checked_at >= r.slot_at for r in rows)

        async def events_arrived() -> bool:
            return len([e for e in events if e["type"] == "check.created"]) >= len(rows)

        await wait_for(events_arrived, what="check.created events")
        payload = next(
            e["payload"]
            for e in events
            if e["type"] == "check.created" and e["payload"]["device_id"] == up.id
        )
        assert payload["status_up"] is True and payload["latency_ms"] > 0


async def test_a_redelivered_probe_of_a_stored_run_is_not_announced_again(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    device = await add_device(engine, name="d", address=f"{http_target}/ok")
    assert device.id is not None
    job = ProbeJob(device_id=device.id, address=device.address, timeout=2, run_key="run:1")
    runtime = await WorkerRuntime.open(settings, engine=engine)
    try:
        async with collect_events(settings) as events:
            first = await probe_device(job, runtime)
            await probe_device(job.model_copy(), runtime)  # as after a redelivery
            await runtime.nc.flush()

            async def announced() -> bool:
                return len(events) >= 1

            await wait_for(announced, what="the first event")
            await asyncio.sleep(0.2)  # room for a second event, were one sent
    finally:
        await runtime.close()
    assert len(await results(engine)) == 1
    # One check.created, and the one state change its result made (unknown -> up).
    assert [(e["type"], e["payload"]["run_key"]) for e in events] == [
        ("device.state_changed", "run:1"),
        ("check.created", "run:1"),
    ]
    assert events[1]["payload"]["checked_at"] == first["checked_at"]
