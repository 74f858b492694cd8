"""The tasks a worker runs, and their registration on a broker."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from taskiq import AsyncBroker, TaskiqEvents, TaskiqState

from jobs.events import CHECK_CREATED
from jobs.probe.run import ProbeResult, run_probe
from jobs.queue.broker import PROBE_TASK, RECORDER_TASK
from jobs.recorder.task import RecorderJob, send_recorder_command
from jobs.worker import WorkerRuntime, runtime_of
from storage.types import utcnow

log = logging.getLogger(__name__)

ProbeSource = Literal["schedule", "manual", "cycle"]


class ProbeJob(BaseModel):
    """The message of one probe task: everything needed to run it without a lookup."""

    model_config = ConfigDict(extra="ignore")

    device_id: int
    address: str
    timeout: float = Field(gt=0)
    run_key: str = Field(min_length=1, max_length=200)
    slot_at: datetime | None = None
    source: ProbeSource = "schedule"


def check_row(job: ProbeJob, result: ProbeResult, checked_at: datetime) -> dict[str, Any]:
    return {
        "device_id": job.device_id,
        "status_up": result.status_up,
        "latency_ms": result.latency_ms,
        "checked_at": checked_at,
        "run_key": job.run_key,
        "slot_at": job.slot_at,
        "status_code": result.status_code,
        "error_kind": str(result.error_kind) if result.error_kind else None,
        "error": result.error,
        "source": job.source,
    }


def check_event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """``check.created``: the seed's ``{device_id, status_up, latency_ms}`` and more."""
    return {
        "device_id": row["device_id"],
        "status_up": row["status_up"],
        "latency_ms": row["latency_ms"],
        "status_code": row["status_code"],
        "error": row["error"],
        "checked_at": row["checked_at"].isoformat(),
        "slot_at": row["slot_at"].isoformat() if row["slot_at"] else None,
        "run_key": row["run_key"],
        "source": row["source"],
    }


async def probe_device(job: ProbeJob, runtime: WorkerRuntime) -> dict[str, Any]:
    """Probe, store (idempotently, keyed by ``run_key``), then announce what was stored
    (a run stored by an earlier delivery is not announced twice)."""
    settings = runtime.settings
    timeout = min(job.timeout, settings.probe_max_timeout_seconds)
    started_at = utcnow()  # lateness (slot -> probe start) is read from the event
    result = await run_probe(
        runtime.http, job.address, timeout, body_max_bytes=settings.probe_body_max_bytes
    )
    row = check_row(job, result, utcnow())
    # Returns after the batch holding this row committed: the ack follows the commit.
    inserted = await runtime.checks.write(row) is not None
    payload = check_event_payload(row) | {
        "worker": runtime.name,
        "started_at": started_at.isoformat(),
    }
    if inserted:
        await runtime.events.publish(CHECK_CREATED, payload)
    else:  # redelivered after an earlier attempt stored (and announced) this run
        log.info("probe result already stored run_key=%s; not announced again", job.run_key)
    log.debug(
        "probe device=%d up=%s latency_ms=%s code=%s error=%s",
        job.device_id,
        result.status_up,
        result.latency_ms,
        result.status_code,
        result.error,
    )
    return payload


def register_tasks(broker: AsyncBroker) -> None:
    """Register every task and the worker start/stop hooks on ``broker``."""

    # The tasks take the runtime from the broker's state, not through taskiq's dependency
    # injection: resolving it cost ~3 % of a saturated worker's CPU (docs/performance.md).
    async def probe(job: ProbeJob) -> dict[str, Any]:
        return await probe_device(job, runtime_of(broker.state))

    async def recorder_command(job: RecorderJob) -> dict[str, Any]:
        return await send_recorder_command(job, runtime_of(broker.state))

    broker.register_task(probe, task_name=PROBE_TASK)
    broker.register_task(recorder_command, task_name=RECORDER_TASK)

    async def _startup(state: TaskiqState) -> None:
        settings = broker.settings  # type: ignore[attr-defined]
        # A host process (scheduler.py) may lend its engine through the state.
        engine = getattr(state, "engine", None)
        state.runtime = await WorkerRuntime.open(settings, engine=engine)

    async def _shutdown(state: TaskiqState) -> None:
        runtime: WorkerRuntime | None = getattr(state, "runtime", None)
        if runtime is not None:
            await runtime.close()
            state.runtime = None

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, _startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, _shutdown)
