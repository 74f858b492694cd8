"""The worker: the only module that knows every task.

:class:`WorkerRuntime` is what a worker process holds open while it runs tasks: one HTTP
client, one database engine with its batch writers, one NATS connection for events.
:func:`register_tasks` puts the tasks on a broker, with start/stop hooks that open the
runtime (``taskiq worker worker:broker``, or the in-process worker of ``python
scheduler.py``) and hand each task the parts of it that the task takes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.aio.client import Client
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from taskiq import TaskiqEvents, TaskiqState

from core.natsconn import connect
from core.settings import Settings
from jobs.alerts.enqueue import change_listener
from jobs.alerts.job import NotifyJob
from jobs.alerts.senders import alert_client
from jobs.alerts.task import AlertParts, deliver
from jobs.events import EventPublisher
from jobs.metrics import WORK, SnapshotPublisher
from jobs.probe.check import CheckTools, RecorderCheck
from jobs.probe.facts import Facts
from jobs.probe.health import HealthTracker
from jobs.probe.http import make_http_client
from jobs.probe.job import ProbeJob
from jobs.probe.kinds.address import RecorderTarget
from jobs.probe.task import ProbeLimits, probe_device
from jobs.queue.broker import NOTIFY_TASK, PROBE_TASK, RECORDER_TASK, FleetprobeBroker
from jobs.recorder.check import probe_recorder
from jobs.recorder.client import RecorderClient
from jobs.recorder.job import RecorderJob
from jobs.recorder.task import send_recorder_command
from jobs.scheduling.calendar import MaintenanceCalendar
from storage.db import init_db, make_engine
from storage.installation import installation_id
from storage.models import CheckResult
from storage.recorder_models import CommandResult
from storage.rollups import rollups_hook
from storage.writer import AfterInsert, BatchWriter

log = logging.getLogger(__name__)


def instance_name(role: str) -> str:
    return f"fleetprobe-{role}@{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerRuntime:
    name: str
    settings: Settings
    engine: AsyncEngine
    http: httpx.AsyncClient
    nc: Client
    # This installation's events (the id in its database on every one: jobs.events).
    events: EventPublisher
    checks: BatchWriter
    # Recorder commands: sent over the events connection (borrowed), results written
    # like probe results (group commit, idempotent by run_key).
    recorder: RecorderClient
    commands: BatchWriter
    probe_limits: ProbeLimits
    # The work counters of this process, published for the web process (jobs/metrics.py).
    metrics: SnapshotPublisher
    # The probe's check kinds: the HTTP client above, and the recorder:// check over
    # the recorder client (the probe layer cannot import it: it is handed a callable).
    check_tools: CheckTools
    # Folds each stored check into its device's health; add_listener() to be told of
    # the state changes this process stored, a commit's at once (after that commit).
    health: HealthTracker
    # Maintenance windows, re-read every ALERT_SWEEP_SECONDS: results in one are marked.
    maintenance: MaintenanceCalendar
    owns_engine: bool = True
    _alert_http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    @property
    def alert_http(self) -> httpx.AsyncClient:
        """The client of alert deliveries: one of their own (the probes' follows their
        devices' TLS and redirect settings, and its pool is sized for probes), made at
        the first delivery: building its SSL context costs ~0.1 s of a worker's start."""
        if self._alert_http is None:
            self._alert_http = alert_client(self.settings.alert_attempt_seconds)
        return self._alert_http

    @classmethod
    async def open(
        cls, settings: Settings, role: str = "worker", engine: AsyncEngine | None = None
    ) -> WorkerRuntime:
        """Open what tasks need; ``engine``: share the host process's engine (its tables
        already made) instead of opening a second pool."""
        name = instance_name(role)
        owns_engine = engine is None
        if engine is None:
            engine = make_engine(settings)
            await init_db(engine)
        installation = await installation_id(engine)  # before NATS: a bad database stops here
        nc = await connect(settings, name)
        http = make_http_client(settings)
        recorder = RecorderClient(settings, name=f"{name}-recorder", connection=nc)
        events = EventPublisher(nc, settings.events_subject, name, installation)
        health = HealthTracker(events)
        runtime = cls(
            name=name,
            settings=settings,
            engine=engine,
            http=http,
            nc=nc,
            events=events,
            # Each batch of results also folds into its devices' health (state changes)
            # and adds to the hourly/daily rollups (uptime), in the batch's transaction.
            checks=_writer(
                engine, CheckResult, settings, after_insert=[health.after_insert, rollups_hook]
            ),
            recorder=recorder,
            commands=_writer(engine, CommandResult, settings),
            probe_limits=ProbeLimits.of(settings),
            metrics=SnapshotPublisher(
                nc, settings.metrics_subject, name, settings.metrics_push_seconds, WORK
            ),
            check_tools=CheckTools(settings, http, recorder=recorder_check(recorder)),
            health=health,
            maintenance=MaintenanceCalendar(engine, settings.alert_sweep_seconds),
            owns_engine=owns_engine,
        )
        runtime.metrics.start()
        log.info("worker runtime ready name=%s http_engine=%s", name, settings.http_engine)
        return runtime

    async def close(self) -> None:
        """Flush pending results first, then close the connections."""
        await self.checks.close()
        await self.commands.close()
        await self.metrics.stop()  # after the last results: their counts go out with it
        await self.recorder.close()
        await self.check_tools.aclose()
        await self.http.aclose()
        if self._alert_http is not None:
            await self._alert_http.aclose()
        try:
            await self.nc.drain()
        except Exception as exc:
            log.debug("nats drain failed error=%s", exc)
        if self.owns_engine:
            await self.engine.dispose()


def recorder_check(client: RecorderClient) -> RecorderCheck:
    """The ``recorder://`` check over ``client``, as the probe's check tools take it."""

    async def check(target: RecorderTarget, timeout: float) -> Facts:
        return await probe_recorder(target, timeout=timeout, client=client)

    return check


def _writer(
    engine: AsyncEngine,
    model: type[SQLModel],
    settings: Settings,
    after_insert: Sequence[AfterInsert] = (),
) -> BatchWriter:
    """A started group-commit writer into ``model``'s table, idempotent on ``run_key``;
    ``after_insert``: hooks run in each batch's transaction (storage.writer)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(
        engine,
        table,
        "run_key",
        batch_size=settings.result_batch_size,
        flush_ms=settings.result_flush_ms,
        after_insert=after_insert,
    )
    writer.start()
    return writer


def runtime_of(state: TaskiqState) -> WorkerRuntime:
    """The runtime the WORKER_STARTUP hook put in the broker's state."""
    runtime: WorkerRuntime | None = getattr(state, "runtime", None)
    if runtime is None:
        raise RuntimeError("worker runtime is not started (WORKER_STARTUP hook did not run)")
    return runtime


def register_tasks(broker: FleetprobeBroker, engine: AsyncEngine | None = None) -> None:
    """Register every task and the worker start/stop hooks on ``broker``; ``engine``: the
    host process's engine, lent to the runtime (``python scheduler.py``)."""
    settings = broker.settings

    # The tasks take the runtime from the broker's state, not through taskiq's dependency
    # injection: resolving it cost ~3 % of a saturated worker's CPU (docs/performance.md).
    async def probe(job: ProbeJob) -> dict[str, Any]:
        return await probe_device(job, runtime_of(broker.state))

    async def recorder_command(job: RecorderJob) -> dict[str, Any]:
        return await send_recorder_command(job, runtime_of(broker.state))

    async def notify(job: NotifyJob) -> dict[str, Any]:
        runtime = runtime_of(broker.state)
        parts = AlertParts(
            runtime.settings, runtime.engine, broker, runtime.alert_http, runtime.events
        )
        return await deliver(job, parts)

    broker.register_task(probe, task_name=PROBE_TASK)
    broker.register_task(recorder_command, task_name=RECORDER_TASK)
    broker.register_task(notify, task_name=NOTIFY_TASK)

    async def _startup(state: TaskiqState) -> None:
        runtime = state.runtime = await WorkerRuntime.open(settings, engine=engine)
        # The state changes this process stores queue their notifications, a batch's at
        # once (only the process whose compare-and-swap landed is told: jobs.probe.health).
        runtime.health.add_listener(change_listener(runtime.engine, broker))

    async def _shutdown(state: TaskiqState) -> None:
        runtime: WorkerRuntime | None = getattr(state, "runtime", None)
        if runtime is not None:
            await runtime.close()
            state.runtime = None

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, _startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, _shutdown)
