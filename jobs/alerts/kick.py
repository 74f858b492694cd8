"""Enqueueing deliveries (the enqueuing side: it never runs one)."""

from __future__ import annotations

from collections.abc import Sequence

from taskiq import AsyncBroker

from jobs.alerts.job import NotifyJob
from jobs.queue.broker import NOTIFY_TASK
from jobs.queue.kick import kick_many


async def kick_notifications(broker: AsyncBroker, jobs: Sequence[NotifyJob]) -> list[str]:
    """One message per job, de-duplicated by JetStream on the job's message id."""
    if not jobs:
        return []
    return await kick_many(broker, NOTIFY_TASK, jobs, [job.msg_id for job in jobs])
