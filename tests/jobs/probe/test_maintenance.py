"""Maintenance windows reach the probes: a skip_probes window's device is not probed, a
suppress_alerts window's device is probed and its results are marked in_maintenance."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.alert_models import MaintenanceWindow
from storage.db import session_factory
from storage.models import CheckResult, Device
from storage.types import utcnow
from tests.helpers import running_worker


async def test_windows_skip_or_mark_the_probes_of_their_devices(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    now = utcnow()
    async with session_factory(engine)() as session:
        devices = [Device(name=n, address=f"{http_target}/", interval_seconds=1) for n in "abc"]
        session.add_all(devices)
        await session.commit()
        skipped, marked, plain = (d.id for d in devices)
        assert skipped is not None and marked is not None and plain is not None
        for ids, mode in (([skipped], "skip_probes"), ([marked], "suppress_alerts")):
            session.add(MaintenanceWindow(name=mode, device_ids=ids, mode=mode,
                                          start=now - timedelta(minutes=1),
                                          duration_seconds=3600))  # fmt: skip
        await session.commit()
    async with running_worker(settings) as broker:
        scheduler = ProbeScheduler(settings, broker, engine)
        await scheduler.start()
        await asyncio.sleep(3.2)
        await scheduler.stop()
        await asyncio.sleep(0.5)  # the last kicked probes land
    async with session_factory(engine)() as session:
        rows = (await session.exec(select(CheckResult))).all()
    by_device = {d: [r for r in rows if r.device_id == d] for d in (skipped, marked, plain)}
    assert by_device[skipped] == [] and scheduler.skipped >= 2
    assert by_device[marked] and all(r.in_maintenance for r in by_device[marked])
    assert by_device[plain] and not any(r.in_maintenance for r in by_device[plain])
