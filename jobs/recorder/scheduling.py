"""The recorder scheduler: one APScheduler job per active ``RecorderSchedule``; a job only
kicks the recorder task.

Jobs are rebuilt from the table at start, on every ``recorder.schedule.*`` event on the
events subject, and every ``SCHEDULER_RESYNC_SECONDS`` (rows changed behind the API's
back).  Each run is keyed by schedule and slot (:mod:`jobs.recorder.slots`), so two
scheduler processes enqueue one message per slot (JetStream de-duplication) and store
one result (the unique run key).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.recorder.kick import kick_recorder, scheduled_job
from jobs.recorder.plan import ScheduleSpec, plan, spec_for
from jobs.recorder.slots import slot_for
from jobs.recorder.triggers import ScheduleError, build_trigger
from storage.db import session_factory
from storage.recorder_models import RecorderSchedule
from storage.recorder_repo import list_schedules
from storage.types import utcnow

log = logging.getLogger(__name__)

SCHEDULE_CREATED = "recorder.schedule.created"
SCHEDULE_UPDATED = "recorder.schedule.updated"
SCHEDULE_DELETED = "recorder.schedule.deleted"
SCHEDULE_EVENTS = frozenset({SCHEDULE_CREATED, SCHEDULE_UPDATED, SCHEDULE_DELETED})
JOB_PREFIX = "recorder:"

Clock = Callable[[], datetime]


def _always_leader() -> bool:
    return True


class RecorderScheduler:
    def __init__(
        self,
        settings: Settings,
        broker: AsyncBroker,
        engine: AsyncEngine,
        nc: Client | None = None,
        *,
        clock: Clock = utcnow,
        is_leader: Callable[[], bool] = _always_leader,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.nc = nc
        self.clock = clock
        # Only the leader kicks (several schedulers may run); slot keys de-duplicate anyway.
        self.is_leader = is_leader
        self.registered: dict[int, ScheduleSpec] = {}
        self.triggers: dict[int, BaseTrigger] = {}
        self.kicks = 0
        self.kick_failures = 0
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
        self.scheduler.start()
        await self.sync()
        self.scheduler.add_job(
            self.sync,
            IntervalTrigger(seconds=self.settings.scheduler_resync_seconds),
            id="fleetprobe:recorder-resync",
            replace_existing=True,
        )
        if self.nc is not None:
            self._sub = await self.nc.subscribe(self.settings.events_subject, cb=self._on_event)
            # Registered at the server before start() returns: no later event is missed.
            await self.nc.flush()
        log.info(
            "recorder scheduler started schedules=%d resync_s=%.0f",
            len(self.registered),
            self.settings.scheduler_resync_seconds,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # the connection may already be closing
                log.debug("unsubscribe failed error=%s", exc)
            self._sub = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in list(self._background):
            task.cancel()
        log.info("recorder scheduler stopped kicks=%d failures=%d", self.kicks, self.kick_failures)

    async def sync(self) -> None:
        """Make the registered jobs match the active schedules in the table."""
        async with self._sync_lock:
            async with self._sessions() as session:
                rows = await list_schedules(session, is_active=True)
            desired = {s.schedule_id: s for s in map(spec_for, rows)}
            changes = plan(desired, self.registered)
            for schedule_id in changes.remove:
                self._remove(schedule_id)
            for spec in [*changes.add, *changes.change]:
                self._upsert(spec)
            if not changes.empty:
                log.info(
                    "recorder schedules synced added=%d changed=%d removed=%d total=%d",
                    len(changes.add),
                    len(changes.change),
                    len(changes.remove),
                    len(self.registered),
                )

    async def sync_schedule(self, schedule_id: int) -> None:
        """Re-read one schedule (after a ``recorder.schedule.*`` event)."""
        async with self._sync_lock:
            async with self._sessions() as session:
                row = await session.get(RecorderSchedule, schedule_id)
            if row is None or not row.is_active:
                self._remove(schedule_id)
                return
            spec = spec_for(row)
            if self.registered.get(schedule_id) != spec:
                self._upsert(spec)
                log.info(
                    "recorder schedule updated id=%d task_id=%s cmd=%s",
                    schedule_id,
                    spec.task_id,
                    spec.cmd,
                )

    def next_run(self, schedule_id: int) -> datetime | None:
        job = self.scheduler.get_job(f"{JOB_PREFIX}{schedule_id}")
        return None if job is None else job.next_run_time  # type: ignore[no-any-return]

    def _upsert(self, spec: ScheduleSpec) -> None:
        try:
            trigger = build_trigger(spec.cron, spec.interval_seconds)
        except ScheduleError as exc:  # a row written behind the API's back
            log.warning("recorder schedule skipped id=%d error=%s", spec.schedule_id, exc)
            self._remove(spec.schedule_id)
            return
        self.scheduler.add_job(
            self.fire,
            trigger,
            args=[spec.schedule_id],
            id=f"{JOB_PREFIX}{spec.schedule_id}",
            replace_existing=True,
        )
        self.registered[spec.schedule_id] = spec
        self.triggers[spec.schedule_id] = trigger

    def _remove(self, schedule_id: int) -> None:
        self.triggers.pop(schedule_id, None)
        if self.registered.pop(schedule_id, None) is not None:
            job_id = f"{JOB_PREFIX}{schedule_id}"
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)

    async def fire(self, schedule_id: int) -> None:
        """One run of a schedule: kick its command for the current slot (leader only)."""
        spec = self.registered.get(schedule_id)
        trigger = self.triggers.get(schedule_id)
        if spec is None or trigger is None or not self.is_leader():
            return
        slot = slot_for(trigger, self.clock())
        if slot is None:
            log.warning("recorder schedule fired outside any slot id=%d", schedule_id)
            return
        await self.kick(spec, slot)

    async def kick(self, spec: ScheduleSpec, slot: datetime) -> None:
        job = scheduled_job(spec.schedule_id, spec.task_id, spec.cmd, spec.payload, slot)
        try:
            await kick_recorder(self.broker, job)
        except Exception as exc:  # NATS down: this slot is lost, the next one is tried
            self.kick_failures += 1
            log.warning(
                "recorder kick failed id=%d task_id=%s cmd=%s slot=%s error=%r",
                spec.schedule_id,
                spec.task_id,
                spec.cmd,
                slot.isoformat(),
                exc,
            )
        else:
            self.kicks += 1
            log.debug(
                "recorder kicked id=%d task_id=%s cmd=%s run_key=%s",
                spec.schedule_id,
                spec.task_id,
                spec.cmd,
                job.run_key,
            )

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            if event.get("type") not in SCHEDULE_EVENTS:
                return
            schedule_id = int(event["payload"]["id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # not a schedule event we can use; the periodic resync covers it
        task = asyncio.create_task(self.sync_schedule(schedule_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
