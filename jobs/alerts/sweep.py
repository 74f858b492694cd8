"""The leader's periodic alert work: reminders while devices stay down,
``maintenance.started`` / ``maintenance.ended`` as windows open and close, and "still
down after maintenance" for a device whose change a window kept quiet.

Run by the scheduler holding the leader lease (:meth:`AlertSweeper.run`), every
``ALERT_SWEEP_SECONDS``.  Reminder n of a change is due ``n * reminder_every_minutes``
after it; only the latest due is queued (a sweep that was late sends one reminder, not a
burst), and its ledger row and message id make a second sweep, or a second leader after a
fail-over, record and send nothing more.  The notifications a window held back are
looked for at every sweep (:func:`jobs.alerts.enqueue.enqueue_after_maintenance`), not
only at the ``maintenance.ended`` this process saw: a window deleted, a lead taken over
at its end, a change stored just after it, a snooze or a second window outlasting it
are all caught by the next sweep once nothing holds the device any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Set
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.alerts.enqueue import ChangeRecord, enqueue_after_maintenance, enqueue_changes
from jobs.alerts.job import NotifyJob
from jobs.alerts.kick import kick_notifications
from jobs.alerts.policy import reminder_due
from jobs.events import MAINTENANCE_ENDED, MAINTENANCE_STARTED, EventPublisher
from jobs.scheduling.calendar import load_windows
from jobs.scheduling.windows import Window, active_ids
from storage import alert_repo
from storage.types import utcnow

log = logging.getLogger(__name__)


class AlertSweeper:
    def __init__(
        self,
        settings: Settings,
        broker: AsyncBroker,
        engine: AsyncEngine,
        events: EventPublisher | None,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.broker = broker
        self.engine = engine
        self.events = events
        self.is_leader = is_leader
        # Windows in force at the last sweep (None: not swept yet).
        self.active: set[int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def remind(
        self, now: datetime, windows: list[Window] | None = None, skip: Set[int] = frozenset()
    ) -> int:
        """Queue the reminders due at ``now`` (none for the changes ``skip``); returns how
        many were newly recorded."""
        due: dict[int, list[ChangeRecord]] = {}  # the changes by the reminder due
        for row in await alert_repo.latest_changes_down(self.engine):
            change = ChangeRecord.of(row)
            if change.id in skip:
                continue
            n = reminder_due((now - change.at).total_seconds(), row["reminder_every_minutes"])
            if n > 0:
                due.setdefault(n, []).append(change)
        recorded = 0
        for n, changes in sorted(due.items()):
            done = await enqueue_changes(
                self.engine, self.broker, changes, reminder=n, now=now, windows=windows
            )
            recorded += sum(d.new_rows for d in done)
        return recorded

    async def announce_windows(
        self, now: datetime, windows: list[Window]
    ) -> tuple[set[int], set[int]]:
        """Publish maintenance.started / .ended for windows that opened or closed since
        the last sweep; returns (started, ended)."""
        current = active_ids(windows, now)
        previous = self.active
        self.active = current
        if previous is None:
            return set(), set()
        started, ended = current - previous, previous - current
        by_id = {w.id: w for w in windows}
        for kind, ids in ((MAINTENANCE_STARTED, started), (MAINTENANCE_ENDED, ended)):
            for window_id in sorted(ids):
                window = by_id.get(window_id)
                device_ids = None
                if window is not None and window.device_ids is not None:
                    device_ids = sorted(window.device_ids)
                log.info("%s maintenance_id=%d", kind, window_id)
                if self.events is not None:
                    await self.events.publish(
                        kind, {"maintenance_id": window_id, "device_ids": device_ids}
                    )
        return started, ended

    async def after_maintenance(
        self, now: datetime, windows: list[Window] | None = None
    ) -> tuple[set[int], int]:
        """Queue "still down after maintenance" where a window kept a change quiet and
        nothing holds the device now; returns (the changes, the rows newly recorded)."""
        return await enqueue_after_maintenance(self.engine, self.broker, now, windows)

    def stale_after(self) -> timedelta:
        """A pending notification untouched this long has lost its message: longer than
        the longest retry wait plus two deliveries of ack_wait."""
        delays = self.settings.alert_retry_delays_seconds
        return timedelta(seconds=max(delays, default=0) + 2 * self.settings.ack_wait_seconds + 60)

    async def requeue_stale(self, now: datetime) -> int:
        """Queue again each pending notification whose message was lost; returns how many.
        The message id names the minute, so two sweeps of one minute queue it once."""
        rows = await alert_repo.stale_pending(self.engine, now - self.stale_after())
        jobs = [
            NotifyJob(
                state_change_id=r["state_change_id"], channel_id=r["channel_id"],
                reminder=r["reminder"], attempt=r["attempts"] + 1,
                hop=int(now.timestamp() // 60),
            )
            for r in rows
        ]  # fmt: skip
        if jobs:
            await kick_notifications(self.broker, jobs)
            for job in jobs:
                await alert_repo.touch(
                    self.engine, job.state_change_id, job.channel_id, job.reminder
                )
            log.warning("stale notifications queued again count=%d", len(jobs))
        return len(jobs)

    async def sweep(self, now: datetime) -> None:
        windows = await load_windows(self.engine)
        await self.announce_windows(now, windows)
        # Before the reminders: the reminder due now may be the very number it takes.
        told, _ = await self.after_maintenance(now, windows)
        await self.remind(now, windows, skip=told)
        await self.requeue_stale(now)

    async def run(self) -> None:
        """Sweep every ``ALERT_SWEEP_SECONDS`` while this process leads; a failed sweep
        is logged and tried again next time."""
        while True:
            if self.is_leader():
                try:
                    await self.sweep(self.clock())
                except Exception as exc:
                    log.warning("alert sweep failed error=%r", exc)
            else:
                self.active = None  # a later lead starts from what is in force then
            await asyncio.sleep(self.settings.alert_sweep_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="alert-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
