"""Enqueueing probes: what the scheduler and the web app do (they never run one)."""

from __future__ import annotations

from collections.abc import Sequence

from taskiq import AsyncBroker

from jobs.probe.job import ProbeJob
from jobs.queue.broker import PROBE_TASK
from jobs.queue.kick import kick_keyed, kick_many


async def kick_probe(broker: AsyncBroker, job: ProbeJob) -> str:
    """Enqueue one probe."""
    return await kick_keyed(broker, PROBE_TASK, job, job.run_key)


async def kick_probes(broker: AsyncBroker, jobs: Sequence[ProbeJob]) -> list[str]:
    """Enqueue many probes in one batch."""
    return await kick_many(broker, PROBE_TASK, jobs, [job.run_key for job in jobs])
