"""Enqueueing tasks: what the scheduler and the web app do (they never run probes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker

from jobs.broker import PROBE_TASK
from jobs.schedule import ProbeJobSpec, slot_key
from jobs.tasks import ProbeJob, ProbeSource

# JetStream drops a second message with the same id within the stream's duplicate window.
MSG_ID_HEADER = "Nats-Msg-Id"


def scheduled_job(spec: ProbeJobSpec, slot: datetime) -> ProbeJob:
    return ProbeJob(
        device_id=spec.device_id,
        address=spec.address,
        timeout=spec.timeout,
        run_key=slot_key(spec.device_id, slot),
        slot_at=slot,
        source="schedule",
    )


def one_off_job(spec: ProbeJobSpec, run_key: str, source: ProbeSource) -> ProbeJob:
    return ProbeJob(
        device_id=spec.device_id,
        address=spec.address,
        timeout=spec.timeout,
        run_key=run_key,
        slot_at=None,
        source=source,
    )


async def kick_keyed(broker: AsyncBroker, task_name: str, job: BaseModel, run_key: str) -> str:
    """Enqueue one task message whose ``run_key`` doubles as the JetStream de-duplication
    id (a second kick of the same run within the window is dropped).  Returns the taskiq
    task id."""
    kicker: AsyncKicker[[BaseModel], object] = AsyncKicker(
        task_name=task_name, broker=broker, labels={MSG_ID_HEADER: run_key}
    )
    task = await kicker.kiq(job.model_dump(mode="json"))  # type: ignore[arg-type]
    return task.task_id


async def kick_probe(broker: AsyncBroker, job: ProbeJob) -> str:
    """Enqueue one probe."""
    return await kick_keyed(broker, PROBE_TASK, job, job.run_key)
