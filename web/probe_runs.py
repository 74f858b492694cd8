"""``POST /jobs/probe``: probes started from the API, through the queue, then (bounded)
waiting for the results.  The web process only enqueues; workers probe.

- :func:`kick_devices` enqueues one probe job per device with a fresh run key.
- :func:`wait_for_results` waits until those run keys are stored, woken by
  ``check.created`` events and re-reading the table (events are fire and forget, so
  the table, not the event, is the answer).

Both serve the monitoring cycles of :mod:`web.cycles` too.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from core.natserrors import queue_refusal
from jobs.events import CHECK_CREATED
from jobs.probe.job import ProbeJobSpec, ProbeSource, load_specs, one_off_job
from jobs.probe.kick import kick_probes
from storage.repo import checks_by_run_keys
from web.endpoints import AnyEndpoint, Call, Endpoint, QueryModel, Reply, respond
from web.errors import ApiError, ErrorBody
from web.schemas import CheckRead, EnqueuedJob, ProbeJobs, ProbeRequest
from web.services import Services, services_of
from web.waiting import unless_client_leaves, wait_for_stored

log = logging.getLogger(__name__)

QUEUE_DOWN = Reply("The job queue (NATS) did not accept the jobs", ErrorBody)
WAIT_TIMEOUT = Field(
    None, gt=0, le=300, description="seconds to wait at most; default: the longest a probe may take"
)


class ProbeQuery(QueryModel):
    wait: bool = Field(False, description="wait (bounded by timeout) for the stored results")
    timeout: float | None = WAIT_TIMEOUT


async def kick_devices(
    services: Services, specs: Sequence[ProbeJobSpec], prefix: str, source: ProbeSource
) -> list[EnqueuedJob]:
    """Enqueue one probe per device, run keys ``<prefix>:<device id>``.

    A queue that does not answer is a 503, raised before anything is reported enqueued.
    """
    jobs = [one_off_job(spec, f"{prefix}:{spec.device_id}", source) for spec in specs]
    started = time.monotonic()
    try:
        task_ids = await kick_probes(services.broker, jobs)
    except Exception as exc:
        detail = queue_refusal(services.settings, exc, time.monotonic() - started)
        # The 503's reason (what, where, for how long), not a bare TimeoutError().
        log.warning("kick failed prefix=%s jobs=%d: %s", prefix, len(jobs), detail)
        raise ApiError(503, detail) from exc
    return [
        EnqueuedJob(device_id=job.device_id, task_id=task_id, run_key=job.run_key)
        for job, task_id in zip(jobs, task_ids, strict=True)
    ]


async def wait_for_results(
    services: Services, run_keys: Sequence[str], timeout: float
) -> dict[str, CheckRead]:
    """The stored results of ``run_keys``, once all are stored or ``timeout`` passed."""

    async def read(session: AsyncSession, keys: list[str]) -> dict[str, CheckRead]:
        rows = await checks_by_run_keys(session, keys)
        return {row.run_key: CheckRead.model_validate(row) for row in rows}

    return await wait_for_stored(services, CHECK_CREATED, run_keys, read, timeout)


async def probe(call: Call[ProbeRequest, ProbeQuery]) -> Response:
    """Enqueue a probe of each device named (empty or absent: every active device).

    Answers 202 with the job ids at once; with ``wait=true``, 200 with the stored results
    when all arrived within ``timeout``, else 202 with those that did (``complete``
    false).  Devices named explicitly are probed even when inactive."""
    services = services_of(call.request)
    wanted = list(dict.fromkeys(call.body.device_ids or []))
    found = await load_specs(
        services.engine, services.settings, ids=wanted or None, active_only=not wanted
    )
    unknown = [i for i in wanted if i not in found]
    if unknown:
        raise ApiError(404, f"unknown device ids: {unknown[:20]}")
    specs = [found[i] for i in wanted] if wanted else list(found.values())
    jobs = await kick_devices(services, specs, f"manual:{uuid.uuid4().hex}", "manual")
    log.info("probe jobs enqueued jobs=%d wait=%s", len(jobs), call.query.wait)
    if not call.query.wait:
        return respond(ProbeJobs(jobs=jobs, complete=False), 202)
    timeout = call.query.timeout or services.settings.longest_task_seconds
    waiting = wait_for_results(services, [j.run_key for j in jobs], timeout)
    results = await unless_client_leaves(call.request, waiting) or {}
    stored = [results[j.run_key] for j in jobs if j.run_key in results]
    complete = len(stored) == len(jobs)
    return respond(
        ProbeJobs(jobs=jobs, complete=complete, results=stored), 200 if complete else 202
    )


_TAGS = ("jobs",)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "POST",
        "/jobs/probe",
        probe,
        body=ProbeRequest,
        query=ProbeQuery,
        tags=_TAGS,
        summary="Probe devices now, through the queue",
        responses={
            200: Reply("Every result stored (wait=true)", ProbeJobs),
            202: Reply("Enqueued; results not (all) stored yet", ProbeJobs),
            404: Reply("A named device does not exist", ErrorBody),
            503: QUEUE_DOWN,
        },
    ),
]
