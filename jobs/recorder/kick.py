"""Enqueueing recorder tasks: what the web app and the scheduler do (they never send
commands themselves)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from taskiq import AsyncBroker

from jobs.queue.broker import RECORDER_TASK
from jobs.queue.kick import kick_keyed
from jobs.recorder.slots import slot_key
from jobs.recorder.task import RecorderJob
from jobs.recorder.wire import CommandName
from web.recorder_schemas import CommandSource


def one_off_job(
    task_id: str, cmd: CommandName, payload: dict[str, Any] | None, source: CommandSource = "api"
) -> RecorderJob:
    """A command not tied to a schedule: a fresh run key each time."""
    return RecorderJob(
        task_id=task_id,
        cmd=cmd,
        payload=payload,
        run_key=f"recorder:{source}:{uuid.uuid4().hex}",
        source=source,
    )


def scheduled_job(
    schedule_id: int, task_id: str, cmd: CommandName, payload: dict[str, Any] | None, slot: datetime
) -> RecorderJob:
    """The command of one schedule slot: the same run key in every scheduler process."""
    return RecorderJob(
        task_id=task_id,
        cmd=cmd,
        payload=payload,
        run_key=slot_key(schedule_id, slot),
        source="schedule",
        schedule_id=schedule_id,
        slot_at=slot,
    )


async def kick_recorder(broker: AsyncBroker, job: RecorderJob) -> str:
    """Enqueue one command (de-duplicated on its run key).  Returns the taskiq task id."""
    return await kick_keyed(broker, RECORDER_TASK, job, job.run_key)
