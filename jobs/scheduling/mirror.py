"""APScheduler jobs mirrored from a table: the shared life cycle of the probe and recorder
schedulers.

Jobs live in APScheduler's in-memory store (its SQL job store blocks the loop and lets two
schedulers double-fire) and are rebuilt from the table: at start, on every matching event
on the events subject (``{"type": ..., "payload": {"id": N}}``), and every
``SCHEDULER_RESYNC_SECONDS`` as a safety net for rows changed behind the API's back.
A subclass says how to read its rows and how to turn one into a job, and may act on a row
that appears or changes while it runs (:meth:`TableMirror.on_scheduled`; the rows found by
start-up's first sync are not "new").
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from nats.aio.client import Client
from nats.aio.msg import Msg

from core.settings import Settings
from jobs.events import event_feed
from jobs.scheduling.plan import plan_schedule

log = logging.getLogger(__name__)

Spec = TypeVar("Spec")


def make_apscheduler(settings: Settings) -> AsyncIOScheduler:
    return AsyncIOScheduler(
        timezone="UTC",
        job_defaults={
            "coalesce": True,  # missed slots: one catch-up run, not a burst
            "max_instances": 1,
            "misfire_grace_time": settings.misfire_grace_seconds,
        },
    )


def event_row_id(data: bytes, types: frozenset[str]) -> int | None:
    """The row id of an event of one of ``types``; None for anything else (pure)."""
    try:
        event = json.loads(data)
        if not isinstance(event, dict) or event.get("type") not in types:
            return None
        return int(event["payload"]["id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class TableMirror(ABC, Generic[Spec]):
    """Keeps ``registered`` (row id -> spec) and the APScheduler jobs equal to the table."""

    #: Used in job ids and log lines, e.g. "probe".
    kind: str = "row"

    def __init__(
        self,
        settings: Settings,
        nc: Client | None,
        event_types: frozenset[str],
        installation: str | None = None,
    ) -> None:
        """``nc``: follow the table's events (``event_types``) on the events subject, as
        installation ``installation`` (the id in its database: another installation's
        events, same row ids, are not this table's); None: re-read on the resync only."""
        if nc is not None and not installation:
            raise ValueError(f"a {self.kind} scheduler following events needs its installation id")
        self.settings = settings
        self.nc = nc
        self.installation = installation
        self.registered: dict[int, Spec] = {}
        self.scheduler = make_apscheduler(settings)
        self._event_types = event_types
        self._unlisten: Callable[[], Awaitable[None]] | None = None
        self._sync_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        # Job runs under way (see ``in_flight``): stop() lets them finish.
        self._in_flight: set[asyncio.Task[Any]] = set()
        # False until start()'s first sync is done: what it finds is not new (on_scheduled).
        self._live = False

    # What a subclass provides.

    @abstractmethod
    async def load_all(self) -> Mapping[int, Spec]:
        """The specs of every active row."""

    @abstractmethod
    async def load_one(self, row_id: int) -> Spec | None:
        """The spec of one row, or None when it is gone or inactive."""

    @abstractmethod
    def add_job(self, row_id: int, spec: Spec) -> bool:
        """Add or replace the row's job; False when the row cannot be scheduled."""

    def on_scheduled(self, row_id: int, old: Spec | None, new: Spec) -> None:
        """A row was scheduled anew (``old`` None: created, re-activated, or first seen by
        a resync) or its spec changed, after start-up's first sync; nothing by default."""

    # The life cycle.

    def job_id(self, row_id: int) -> str:
        return f"{self.kind}:{row_id}"

    async def start(self) -> None:
        self.scheduler.start()
        await self.sync()
        self._live = True
        self.scheduler.add_job(
            self.sync,
            IntervalTrigger(seconds=self.settings.scheduler_resync_seconds),
            id=f"fleetprobe:{self.kind}-resync",
            replace_existing=True,
        )
        if self.nc is not None and self.installation:  # live at the server before start()
            # returns: no event missed
            feed = event_feed(self.nc, self.settings.events_subject, self.installation)
            self._unlisten = await feed.listen(self._on_event, self._event_types)
        log.info(
            "%s scheduler started jobs=%d resync_s=%.0f",
            self.kind,
            len(self.registered),
            self.settings.scheduler_resync_seconds,
        )

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Wrap a job run whose side effect must not be cut in half (a kick published but
        not yet counted): stop() waits for it instead of cancelling it."""
        task = asyncio.current_task()
        if task is None or task in self._in_flight:
            # Reentrant: a kick inside a run already wrapped (took_lead under
            # refresh_lease) must not unmark the outer run when it ends.
            yield
            return
        self._in_flight.add(task)
        try:
            yield
        finally:
            self._in_flight.discard(task)

    async def stop(self, drain_seconds: float = 5.0) -> None:
        if self._unlisten is not None:
            await self._unlisten()
            self._unlisten = None
        if self.scheduler.running:
            # No new runs; those under way finish (APScheduler's shutdown cancels them).
            self.scheduler.pause()
            running = [t for t in self._in_flight if t is not asyncio.current_task()]
            if running:
                _, late = await asyncio.wait(running, timeout=drain_seconds)
                if late:
                    log.warning("%s scheduler stopping with %d runs cut", self.kind, len(late))
            self.scheduler.shutdown(wait=False)
        for task in list(self._background):
            task.cancel()
        log.info("%s scheduler stopped", self.kind)

    async def sync(self) -> None:
        """Make the registered jobs match the active rows."""
        async with self._sync_lock:
            desired = await self.load_all()
            plan = plan_schedule(desired, self.registered)
            for row_id in plan.remove:
                self.remove(row_id)
            for row_id, spec in [*plan.add, *plan.change]:
                self._upsert(row_id, spec)
            if not plan.empty:
                log.info(
                    "%s schedule synced added=%d changed=%d removed=%d total=%d",
                    self.kind,
                    len(plan.add),
                    len(plan.change),
                    len(plan.remove),
                    len(self.registered),
                )

    async def sync_one(self, row_id: int) -> None:
        """Re-read one row (after an event) and update its job."""
        async with self._sync_lock:
            spec = await self.load_one(row_id)
            if spec is None:
                self.remove(row_id)
            elif self.registered.get(row_id) != spec:
                self._upsert(row_id, spec)

    def _upsert(self, row_id: int, spec: Spec) -> None:
        old = self.registered.get(row_id)
        if self.add_job(row_id, spec):
            self.registered[row_id] = spec
            if self._live:
                self.on_scheduled(row_id, old, spec)
        else:
            self.remove(row_id)

    def remove(self, row_id: int) -> None:
        if self.registered.pop(row_id, None) is not None:
            job_id = self.job_id(row_id)
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)

    def next_run(self, row_id: int) -> datetime | None:
        job = self.scheduler.get_job(self.job_id(row_id))
        return None if job is None else job.next_run_time  # type: ignore[no-any-return]

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_event(self, msg: Msg) -> None:
        # The feed skips ours of other types undecoded; outside messages get here too.
        row_id = event_row_id(msg.data, self._event_types)
        if row_id is not None:  # anything else: the periodic resync covers it
            self.spawn(self.sync_one(row_id))
