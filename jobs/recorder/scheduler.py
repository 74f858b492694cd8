"""The recorder scheduler: one APScheduler job per active ``RecorderSchedule``; a job only
kicks the recorder task.

Jobs are rebuilt from the table at start, on every ``recorder.schedule.*`` event on the
events subject, and every ``SCHEDULER_RESYNC_SECONDS`` (rows changed behind the API's
back).  Each run is keyed by schedule and slot (:mod:`jobs.recorder.slots`), so two
scheduler processes enqueue one message per slot (JetStream de-duplication) and store
one result (the unique run key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from apscheduler.triggers.base import BaseTrigger
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.events import SCHEDULE_EVENTS
from jobs.probe.kinds.address import AddressError, RecorderTarget, parse_address
from jobs.recorder.job import scheduled_job
from jobs.recorder.kick import kick_recorder
from jobs.recorder.plan import ScheduleSpec, spec_for
from jobs.recorder.slots import slot_for
from jobs.recorder.triggers import build_trigger
from jobs.scheduling.calendar import MaintenanceCalendar
from jobs.scheduling.cron import ScheduleError
from jobs.scheduling.mirror import TableMirror
from jobs.scheduling.windows import SKIP_PROBES, covering
from storage.db import session_factory
from storage.models import Device
from storage.recorder_models import RecorderSchedule
from storage.recorder_repo import list_schedules
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _recorder_task(address: str) -> str | None:
    try:
        target = parse_address(address)
    except AddressError:
        return None
    return target.task_id if isinstance(target, RecorderTarget) else None


def _always_leader() -> bool:
    return True


class RecorderScheduler(TableMirror[ScheduleSpec]):
    kind = "recorder"

    def __init__(
        self,
        settings: Settings,
        broker: AsyncBroker,
        engine: AsyncEngine,
        nc: Client | None = None,
        *,
        clock: Clock = utcnow,
        is_leader: Callable[[], bool] = _always_leader,
        installation: str | None = None,
    ) -> None:
        super().__init__(settings, nc, SCHEDULE_EVENTS, installation)
        self.broker = broker
        self.clock = clock
        # Only the leader kicks (several schedulers may run); slot keys de-duplicate anyway.
        self.is_leader = is_leader
        self.triggers: dict[int, BaseTrigger] = {}
        self.kicks = 0
        self.kick_failures = 0
        self._sessions = session_factory(engine)
        # skip_probes maintenance windows hold back the commands of their recorder devices.
        self.maintenance = MaintenanceCalendar(engine, settings.alert_sweep_seconds)
        self.held_back = 0

    async def load_all(self) -> Mapping[int, ScheduleSpec]:
        async with self._sessions() as session:
            rows = await list_schedules(session, is_active=True)
        return {spec.schedule_id: spec for spec in map(spec_for, rows)}

    async def load_one(self, row_id: int) -> ScheduleSpec | None:
        async with self._sessions() as session:
            row = await session.get(RecorderSchedule, row_id)
        return None if row is None or not row.is_active else spec_for(row)

    def add_job(self, row_id: int, spec: ScheduleSpec) -> bool:
        try:
            trigger = build_trigger(spec.cron, spec.interval_seconds)
        except ScheduleError as exc:  # a row written behind the API's back
            log.warning("recorder schedule skipped id=%d error=%s", row_id, exc)
            return False
        self.scheduler.add_job(
            self.fire, trigger, args=[row_id], id=self.job_id(row_id), replace_existing=True
        )
        self.triggers[row_id] = trigger
        return True

    def remove(self, row_id: int) -> None:
        self.triggers.pop(row_id, None)
        super().remove(row_id)

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
        if await self.in_maintenance(spec.task_id, slot):
            self.held_back += 1
            log.info("recorder command held back id=%d task_id=%s", schedule_id, spec.task_id)
            return
        with self.in_flight():
            await self.kick(spec, slot)

    async def in_maintenance(self, task_id: str, at: datetime) -> bool:
        """Whether a skip_probes window covers a device ``recorder://<task_id>`` (or every
        device) at ``at``."""
        windows = [
            w for w in await self.maintenance.current()
            if w.mode == SKIP_PROBES and covering(w, at) is not None
        ]  # fmt: skip
        if not windows:
            return False
        if any(w.device_ids is None for w in windows):
            return True
        ids = set().union(*(w.device_ids or () for w in windows))
        async with self._sessions() as session:
            rows = (await session.exec(select(Device).where(col(Device.id).in_(ids)))).all()
        return any(_recorder_task(row.address) == task_id for row in rows)

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
