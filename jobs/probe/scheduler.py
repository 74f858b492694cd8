"""The probe scheduler: one APScheduler interval job per active device; a job only kicks.

The jobs mirror the ``devices`` table (:mod:`jobs.scheduling.mirror`).  Only the holder of the
leader lease kicks, and prunes old results (:mod:`jobs.scheduling.retention`); while NATS
is down each device owes its latest slot, kicked once when the queue answers again
(coalesced: one catch-up run, not a burst).

A device that appears while it runs (created, re-activated) or whose address or check
changes is also probed once at once by the leader, beside its slots: the run key
``probe:<id>:new:<updated_at>`` (:func:`jobs.probe.job.first_key`) is the same in every
scheduler, so one run even with two.  Start-up's own sync kicks nothing of the kind: a
restart probes no device beyond its owed slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import islice

from apscheduler.triggers.interval import IntervalTrigger
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.events import SCHEDULE_DEVICE_EVENTS, EventPublisher
from jobs.probe.health import HealthTracker, StateListener, retry_intervals
from jobs.probe.job import ProbeJobSpec, first_job, load_specs, scheduled_job
from jobs.probe.kick import kick_probe
from jobs.scheduling.calendar import MaintenanceCalendar
from jobs.scheduling.lease import LeaderLease
from jobs.scheduling.mirror import TableMirror
from jobs.scheduling.retention import RetentionJob
from jobs.scheduling.slots import recent_slots, slot_anchor, slot_at
from jobs.scheduling.windows import SKIP_PROBES
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class ProbeScheduler(TableMirror[ProbeJobSpec]):
    kind = "probe"
    # Seconds between the leader's health sweeps (stale -> unknown, is_active -> paused).
    sweep_every = 10.0
    # Immediate probes of new devices (kick_fresh) at most this many a second: devices
    # added by the thousand while it runs (a resync after a bulk import) are spread out.
    first_probes_per_second = 100

    def __init__(
        self,
        settings: Settings,
        broker: AsyncBroker,
        engine: AsyncEngine,
        nc: Client | None = None,
        clock: Clock = utcnow,
        lease: LeaderLease | None = None,
        state_listeners: list[StateListener] | None = None,
        installation: str | None = None,
    ) -> None:
        """``nc`` and ``installation`` (the id in the database): device events are followed
        and the sweep's state changes announced, as that installation's."""
        super().__init__(settings, nc, SCHEDULE_DEVICE_EVENTS, installation)
        events = None
        if nc is not None and installation:
            events = EventPublisher(nc, settings.events_subject, "scheduler", installation)
        # The sweep's changes are announced like a worker's (device.state_changed, listeners).
        self.health = HealthTracker(events, state_listeners)
        self.sweeps = 0
        self.broker = broker
        self.engine = engine
        self.clock = clock
        self.kicks = 0
        self.kick_failures = 0
        # Slots not kicked because the queue was unreachable (owed; caught up later),
        # counted on after the lease lapsed in that outage.
        self.missed = 0
        self.caught_up = 0
        # device id -> latest slot whose kick failed (NATS down); kicked once it is back.
        self.owed: dict[int, datetime] = {}
        # None: always kick (a single scheduler); else only while holding the lease.
        self.lease = lease
        # Old results and rollups pruned, by the leader only (RETENTION_DAYS).
        self.retention = RetentionJob(settings, engine, lambda: self.is_leader, clock)
        # Maintenance windows in skip_probes mode: their devices' slots are not kicked.
        self.maintenance = MaintenanceCalendar(engine, settings.alert_sweep_seconds)
        self.skipped = 0
        # Devices new to the schedule (or with a new address or check) whose one immediate
        # probe is not out yet (the queue refused it: tried again every second).
        self.fresh: dict[int, ProbeJobSpec] = {}
        self.first_wanted = 0  # immediate probes decided (on_scheduled)
        self.first_kicks = 0  # ... and enqueued
        self._fresh_soon = False  # a kick_fresh is spawned and not yet started
        # The clock's second whose budget of first_probes_per_second is being spent.
        self._first_second = -1
        self._first_budget = 0

    async def start(self) -> None:
        if self.lease is not None:
            await self.lease.refresh()
        await super().start()
        if self.lease is not None:
            if self.lease.is_leader:
                await self.took_lead()
            self.scheduler.add_job(
                self.refresh_lease,
                IntervalTrigger(seconds=self.lease.renew_every),
                id="fleetprobe:lease",
                replace_existing=True,
            )
        self.scheduler.add_job(
            self.catch_up,
            IntervalTrigger(seconds=1),
            id="fleetprobe:catch-up",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.kick_fresh,
            IntervalTrigger(seconds=1),
            id="fleetprobe:first-probes",
            replace_existing=True,
        )
        # The first run a minute after start (not during start-up's burst of work).
        self.scheduler.add_job(
            self.retention.run,
            IntervalTrigger(
                seconds=self.settings.retention_interval_seconds,
                start_date=self.clock() + timedelta(seconds=60),
            ),
            id="fleetprobe:retention",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.sweep_health,
            IntervalTrigger(seconds=self.sweep_every),
            id="fleetprobe:health-sweep",
            replace_existing=True,
        )

    async def stop(self, drain_seconds: float = 5.0) -> None:
        await super().stop(drain_seconds)
        if self.lease is not None:
            await self.lease.release()
        log.info(
            "probe kicks=%d first=%d failures=%d missed_queue_down=%d caught_up=%d still_owed=%d",
            self.kicks,
            self.first_kicks,
            self.kick_failures,
            self.missed,
            self.caught_up,
            len(self.owed),
        )

    async def load_all(self) -> Mapping[int, ProbeJobSpec]:
        return await self._load(None)

    async def load_one(self, row_id: int) -> ProbeJobSpec | None:
        return (await self._load([row_id])).get(row_id)

    async def _load(self, ids: list[int] | None) -> dict[int, ProbeJobSpec]:
        """The specs, each at its retry interval while its health says so (the slots of
        that interval: every scheduler reads the same health, so their slots agree)."""
        async with self.engine.connect() as conn:  # one connection for both reads
            specs = await load_specs(conn, self.settings, ids=ids, active_only=True)
            retrying = await retry_intervals(conn, ids)
        for device_id, retry in retrying.items():
            if device_id in specs:
                specs[device_id] = replace(specs[device_id], interval=retry)
        return specs

    async def sync_device(self, device_id: int) -> None:
        """Re-read one device (after a change through the API) and update its job."""
        await self.sync_one(device_id)

    def add_job(self, row_id: int, spec: ProbeJobSpec) -> bool:
        anchor = slot_anchor(spec.device_id, spec.interval)
        self.scheduler.add_job(
            self._fire,
            IntervalTrigger(seconds=spec.interval, start_date=anchor),
            args=[spec.device_id],
            id=self.job_id(row_id),
            replace_existing=True,
        )
        return True

    def remove(self, row_id: int) -> None:
        self.owed.pop(row_id, None)
        self.fresh.pop(row_id, None)
        super().remove(row_id)

    def on_scheduled(self, row_id: int, old: ProbeJobSpec | None, new: ProbeJobSpec) -> None:
        """The leader probes a device at once when it appears while the scheduler runs
        (created, re-activated) or its address or check changes; a new interval or
        timeout alone waits for its slots."""
        if old is not None and (old.address, old.check) == (new.address, new.check):
            return
        if not self.is_leader:
            return  # the leader hears of it too (the event, the resync) and kicks it
        self.fresh[row_id] = new
        self.first_wanted += 1
        if not self._fresh_soon:  # one task for a burst of changes (a resync's)
            self._fresh_soon = True
            self.spawn(self._kick_fresh_soon())

    async def _kick_fresh_soon(self) -> None:
        self._fresh_soon = False
        await self.kick_fresh()

    async def kick_fresh(self) -> int:
        """Kick the immediate probes of the devices in ``fresh`` (the leader, the queue
        connected), at most ``first_probes_per_second`` sent a second of the clock: the
        rest, and any the queue refused, wait for the next call (every second); a refused
        one does not count against its second."""
        if not self.fresh or not self.is_leader or not self._queue_connected():
            return 0
        second = int(self.clock().timestamp())
        if second != self._first_second:
            self._first_second, self._first_budget = second, self.first_probes_per_second
        taken = list(islice(self.fresh.items(), self._first_budget))
        if not taken:
            return 0
        self._first_budget -= len(taken)
        for device_id, _ in taken:  # taken now: another call cannot kick them too
            del self.fresh[device_id]
        with self.in_flight():
            results = await asyncio.gather(*(self._kick_first(d, s) for d, s in taken))
        sent = sum(results)
        if second == self._first_second:  # what did not go out is not spent
            self._first_budget += len(taken) - sent
        return sent

    async def _kick_first(self, device_id: int, spec: ProbeJobSpec) -> bool:
        if await self.in_skip_window(device_id, self.clock()):
            return False
        try:
            await kick_probe(self.broker, first_job(spec))
        except Exception as exc:
            self.kick_failures += 1
            log.warning("first probe not kicked device=%d error=%r", device_id, exc)
            if device_id in self.registered:  # tried again, unless a newer one came
                self.fresh.setdefault(device_id, spec)
            return False
        self.first_kicks += 1
        log.info("first probe kicked device=%d", device_id)
        return True

    async def refresh_lease(self) -> None:
        """Renew or take the lease; on taking it, catch up what nobody kicked."""
        if self.lease is None:
            return
        # A stop waits for it (at most the lease's refresh_timeout, NATS away) instead of
        # cancelling it: APScheduler logs a cancelled job as an ERROR with a traceback.
        with self.in_flight():
            was_leader = self.lease.is_leader
            if await self.lease.refresh() and not was_leader:
                await self.took_lead()

    async def took_lead(self) -> None:
        """Owe each device its latest slot if it came in the last lease time plus one
        renewal period: the longest no scheduler can have held the lease (the previous
        leader died, or none ran).  Those the previous leader did kick are dropped by
        JetStream's de-duplication (``Nats-Msg-Id`` = the run key)."""
        assert self.lease is not None
        window = self.lease.ttl + self.lease.renew_every + 1.0
        recent = recent_slots(self.registered, self.clock(), window)
        for device_id, slot in recent.items():
            self.owed.setdefault(device_id, slot)
        log.info("took the lead: owing recent slots devices=%d window_s=%.1f", len(recent), window)
        await self.catch_up()  # now: the next regular slot would coalesce them away

    async def sweep_health(self, now: datetime | None = None) -> int:
        """The leader only: devices without a result for two intervals become unknown,
        inactive ones paused (jobs.probe.health); how many changes were stored."""
        if not self.is_leader:
            return 0
        try:
            changed = await self.health.sweep(self.engine, self.settings, now or self.clock())
        except Exception as exc:  # the next sweep tries again
            log.warning("health sweep failed error=%r", exc)
            return 0
        self.sweeps += 1
        return changed

    @property
    def is_leader(self) -> bool:
        return self.lease is None or self.lease.is_leader

    async def _fire(self, device_id: int) -> None:
        with self.in_flight():
            await self._fire_slot(device_id)

    async def _fire_slot(self, device_id: int) -> None:
        spec = self.registered.get(device_id)
        if spec is None:
            return
        leading = self.is_leader
        if not leading and not self._lapsed_in_outage():
            return
        slot = slot_at(self.clock(), slot_anchor(device_id, spec.interval), spec.interval)
        if await self.in_skip_window(device_id, slot):
            return
        if not leading:
            # Ours to kick had the queue answered: missed, not another scheduler's (on
            # taking the lead again, took_lead owes the latest slot).
            self.missed += 1
            return
        if not self._queue_connected():
            # Don't wait on a publish that cannot succeed: owe the slot and move on.
            self.missed += 1
            self._owe(spec, slot, "queue unreachable")
            return
        await self.kick(spec, slot)

    async def kick(self, spec: ProbeJobSpec, slot: datetime) -> bool:
        try:
            # A stop waits for the PubAck: a kick the server stored is counted, not cut.
            with self.in_flight():
                await kick_probe(self.broker, scheduled_job(spec, slot))
        except Exception as exc:
            self.kick_failures += 1
            self._owe(spec, slot, repr(exc))
            return False
        self.kicks += 1
        # A later slot went out: an older owed one is coalesced into it, and the device's
        # pending immediate probe (kick_fresh) is no longer needed.
        self.owed.pop(spec.device_id, None)
        self.fresh.pop(spec.device_id, None)
        return True

    async def in_skip_window(self, device_id: int, slot: datetime) -> bool:
        """Whether a skip_probes maintenance window covers the device at ``slot``."""
        window = await self.maintenance.window_for(device_id, slot, SKIP_PROBES)
        if window is None:
            return False
        self.skipped += 1
        log.debug("slot skipped device=%d maintenance_id=%d", device_id, window.id)
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
                if await self.in_skip_window(device_id, slot):
                    self.owed.pop(device_id, None)
                    return False
                done = await self.kick(spec, slot)
                if done:
                    self.caught_up += 1
                return done

        results = await asyncio.gather(*(one(d, s) for d, s in owed))
        sent = sum(results)
        if sent:
            log.info("caught up owed slots kicked=%d still_owed=%d", sent, len(self.owed))
        return sent

    def _lapsed_in_outage(self) -> bool:
        """Our lease lapsed because NATS was away (not taken by another scheduler), and
        the queue is still unreachable."""
        return self.lease is not None and self.lease.lapsed and not self._queue_connected()

    def _queue_connected(self) -> bool:
        client = getattr(self.broker, "client", None)
        return client is None or bool(client.is_connected)
