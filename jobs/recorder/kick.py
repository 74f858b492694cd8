"""Enqueueing recorder tasks: what the web app and the scheduler do (they never send
commands themselves)."""

from __future__ import annotations

from taskiq import AsyncBroker

from jobs.queue.broker import RECORDER_TASK
from jobs.queue.kick import kick_keyed
from jobs.recorder.job import RecorderJob


async def kick_recorder(broker: AsyncBroker, job: RecorderJob) -> str:
    """Enqueue one command (de-duplicated on its run key).  Returns the taskiq task id."""
    return await kick_keyed(broker, RECORDER_TASK, job, job.run_key)
