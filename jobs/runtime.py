"""What a worker process holds open while it runs tasks: one HTTP client, one database
engine with its batch writers, one NATS connection for events.

Built in the broker's WORKER_STARTUP hook (``taskiq worker worker:broker``) or by
``python scheduler.py`` for its in-process worker; tasks reach it through taskiq's state.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import httpx
from nats.aio.client import Client
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import Context, TaskiqDepends

from core.natsconn import connect
from core.settings import Settings
from jobs.events import EventPublisher
from jobs.http import make_http_client
from jobs.recorder.client import RecorderClient
from storage.db import init_db, make_engine
from storage.models import CheckResult
from storage.recorder_models import CommandResult
from storage.writer import BatchWriter

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
    events: EventPublisher
    checks: BatchWriter
    # Recorder commands: sent over the events connection (borrowed), results written
    # like probe results (group commit, idempotent by run_key).
    recorder: RecorderClient
    commands: BatchWriter

    @classmethod
    async def open(cls, settings: Settings, role: str = "worker") -> WorkerRuntime:
        name = instance_name(role)
        engine = make_engine(settings)
        await init_db(engine)
        nc = await connect(settings, name)
        table: Table = CheckResult.__table__  # type: ignore[attr-defined]
        checks = BatchWriter(
            engine,
            table,
            "run_key",
            batch_size=settings.result_batch_size,
            flush_ms=settings.result_flush_ms,
        )
        checks.start()
        commands_table: Table = CommandResult.__table__  # type: ignore[attr-defined]
        commands = BatchWriter(
            engine,
            commands_table,
            "run_key",
            batch_size=settings.result_batch_size,
            flush_ms=settings.result_flush_ms,
        )
        commands.start()
        runtime = cls(
            name=name,
            settings=settings,
            engine=engine,
            http=make_http_client(settings),
            nc=nc,
            events=EventPublisher(nc, settings.events_subject, name),
            checks=checks,
            recorder=RecorderClient(settings, name=f"{name}-recorder", connection=nc),
            commands=commands,
        )
        log.info("worker runtime ready name=%s http_engine=%s", name, settings.http_engine)
        return runtime

    async def close(self) -> None:
        """Flush pending results first, then close the connections."""
        await self.checks.close()
        await self.commands.close()
        await self.recorder.close()
        await self.http.aclose()
        try:
            await self.nc.drain()
        except Exception as exc:
            log.debug("nats drain failed error=%s", exc)
        await self.engine.dispose()


def get_runtime(context: Context = TaskiqDepends()) -> WorkerRuntime:
    runtime: WorkerRuntime | None = getattr(context.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("worker runtime is not started (WORKER_STARTUP hook did not run)")
    return runtime
