"""The probe scheduler: one APScheduler interval job per active device; a job only kicks.

Jobs live in APScheduler's in-memory store and are rebuilt from the ``devices`` table
(at start, on every ``device.*`` event, and every ``SCHEDULER_RESYNC_SECONDS`` as a
safety net for rows changed behind the API's back).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.events import DEVICE_EVENTS
from jobs.kick import kick_probe, scheduled_job
from jobs.leader import LeaderLease
from jobs.schedule import ProbeJobSpec, plan_schedule, slot_anchor, slot_at
from storage.db import session_factory
from storage.models import Device
from storage.repo import list_devices
from storage.types import utcnow

log = logging.getLogger(__name__)

JOB_PREFIX = "probe:"
Clock = Callable[[], datetime]
Kicker = Callable[[ProbeJobSpec, datetime], Awaitable[None]]


def spec_for(device: Device, settings: Settings) -> ProbeJobSpec:
    assert device.id is not None
    return ProbeJobSpec(
        device_id=device.id,
        address=device.address,
        interval=device.interval_seconds or settings.monitor_period_seconds,
        timeout=device.timeout_seconds or settings.probe_timeout_seconds,
    )


class ProbeScheduler:
    def __init__(
        self,
        settings: Settings,
        broker: AsyncBroker,
        engine: AsyncEngine,
        nc: Client | None = None,
        clock: Clock = utcnow,
        lease: LeaderLease | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.engine = engine
        self.nc = nc
        self.clock = clock
        self.registered: dict[int, ProbeJobSpec] = {}
        self.kicks = 0
        self.kick_failures = 0
        self.skipped_not_leader = 0
        self.caught_up = 0
        # device id -> latest slot whose kick failed (NATS down); kicked once it is back.
        self.owed: dict[int, datetime] = {}
        # None: always kick (a single scheduler); else only while holding the lease.
        self.lease = lease
        self._sessions = session_factory(engine)
        self._sub: Subscription | None = None
        self._sync_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={
                "coalesce": True,  # missed slots: one catch-up run, not a burst
                "max_instances": 1,
                "misfire_grace_time": settings.misfire_grace_seconds,
            },
        )

    async def start(self) -> None:
        if self.lease is not None:
            await self.lease.refresh()
        self.scheduler.start()
        if self.lease is not None:
            self.scheduler.add_job(
                self.lease.refresh,
                IntervalTrigger(seconds=self.lease.renew_every),
                id="fleetprobe:lease",
                replace_existing=True,
            )
        await self.sync()
        self.scheduler.add_job(
            self.catch_up,
            IntervalTrigger(seconds=1),
            id="fleetprobe:catch-up",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.sync,
            IntervalTrigger(seconds=self.settings.scheduler_resync_seconds),
            id="fleetprobe:resync",
            replace_existing=True,
        )
        if self.nc is not None:
            self._sub = await self.nc.subscribe(self.settings.events_subject, cb=self._on_event)
            await self.nc.flush()  # the subscription is live before start() returns
        log.info(
            "scheduler started devices=%d resync_s=%.0f",
            len(self.registered),
            self.settings.scheduler_resync_seconds,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe failed error=%s", exc)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.lease is not None:
            await self.lease.release()
        for task in list(self._background):
            task.cancel()
        log.info("scheduler stopped kicks=%d failures=%d", self.kicks, self.kick_failures)

    async def sync(self) -> None:
        """Make the registered jobs match the active devices in the table."""
        async with self._sync_lock:
            async with self._sessions() as session:
                devices = await list_devices(session, is_active=True)
            desired = {d.id: spec_for(d, self.settings) for d in devices if d.id is not None}
            self._apply(desired, full=True)

    async def sync_device(self, device_id: int) -> None:
        """Re-read one device (after a ``device.*`` event) and update its job."""
        async with self._sync_lock:
            async with self._sessions() as session:
                device = await session.get(Device, device_id)
            if device is None or not device.is_active:
                self._remove(device_id)
            else:
                spec = spec_for(device, self.settings)
                if self.registered.get(device_id) != spec:
                    self._upsert(spec)

    def _apply(self, desired: dict[int, ProbeJobSpec], full: bool) -> None:
        plan = plan_schedule(desired, self.registered)
        for device_id in plan.remove:
            self._remove(device_id)
        for spec in [*plan.add, *plan.change]:
            self._upsert(spec)
        if not plan.empty:
            log.info(
                "schedule synced added=%d changed=%d removed=%d total=%d",
                len(plan.add),
                len(plan.change),
                len(plan.remove),
                len(self.registered),
            )

    def _upsert(self, spec: ProbeJobSpec) -> None:
        anchor = slot_anchor(spec.device_id, spec.interval)
        self.scheduler.add_job(
            self._fire,
            IntervalTrigger(seconds=spec.interval, start_date=anchor),
            args=[spec.device_id],
            id=f"{JOB_PREFIX}{spec.device_id}",
            replace_existing=True,
        )
        self.registered[spec.device_id] = spec

    def _remove(self, device_id: int) -> None:
        self.owed.pop(device_id, None)
        if self.registered.pop(device_id, None) is not None:
            job_id = f"{JOB_PREFIX}{device_id}"
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)

    @property
    def is_leader(self) -> bool:
        return self.lease is None or self.lease.is_leader

    async def _fire(self, device_id: int) -> None:
        spec = self.registered.get(device_id)
        if spec is None:
            return
        if not self.is_leader:
            self.skipped_not_leader += 1
            return
        slot = slot_at(self.clock(), slot_anchor(device_id, spec.interval), spec.interval)
        if not self._queue_connected():
            # Don't wait on a publish that cannot succeed: owe the slot and move on.
            self._owe(spec, slot, "queue unreachable")
            return
        await self.kick(spec, slot)

    async def kick(self, spec: ProbeJobSpec, slot: datetime) -> bool:
        try:
            await kick_probe(self.broker, scheduled_job(spec, slot))
        except Exception as exc:
            self.kick_failures += 1
            self._owe(spec, slot, repr(exc))
            return False
        self.kicks += 1
        # A later slot went out: an older owed one is coalesced into it.
        self.owed.pop(spec.device_id, None)
        return True

    def _owe(self, spec: ProbeJobSpec, slot: datetime, reason: str) -> None:
        if not self.owed:
            log.warning(
                "kicks failing, owing slots reason=%s first_device=%d slot=%s",
                reason,
                spec.device_id,
                slot.isoformat(),
            )
        # Only the latest missed slot per device is kept: one catch-up run, not a burst.
        self.owed[spec.device_id] = slot

    async def catch_up(self) -> int:
        """Kick the latest owed slot of each device once the queue answers again."""
        if not self.owed or not self.is_leader or not self._queue_connected():
            return 0
        owed = list(self.owed.items())
        sem = asyncio.Semaphore(100)

        async def one(device_id: int, slot: datetime) -> bool:
            spec = self.registered.get(device_id)
            if spec is None:
                self.owed.pop(device_id, None)
                return False
            async with sem:
                if self.owed.get(device_id) != slot:
                    return False  # a newer slot was kicked or owed meanwhile
                done = await self.kick(spec, slot)
                if done:
                    self.caught_up += 1
                return done

        results = await asyncio.gather(*(one(d, s) for d, s in owed))
        sent = sum(results)
        if sent:
            log.info("caught up owed slots kicked=%d still_owed=%d", sent, len(self.owed))
        return sent

    def _queue_connected(self) -> bool:
        client = getattr(self.broker, "client", None)
        return client is None or bool(client.is_connected)

    def next_slot(self, device_id: int) -> datetime | None:
        job = self.scheduler.get_job(f"{JOB_PREFIX}{device_id}")
        return None if job is None else job.next_run_time  # type: ignore[no-any-return]

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind not in DEVICE_EVENTS:
                return
            device_id = int(event["payload"]["id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # not a device event we can use; the periodic resync covers it
        task = asyncio.create_task(self.sync_device(device_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
