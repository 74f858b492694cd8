"""Manual triggers through the queue: ``/jobs/probe``, ``/tasks/run``,
``/tasks/run/background``.  The web process only enqueues; workers probe."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import Field
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from jobs.probe.job import load_specs
from web.cycles import CycleRunner, kick_devices, wait_for_results
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, QueryModel, Reply, respond
from web.errors import ApiError, ErrorBody
from web.schemas import BackgroundStatus, CycleSummary, ProbeJobs, ProbeRequest
from web.services import services_of

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_DOWN = Reply("The job queue (NATS) did not accept the jobs", ErrorBody)
_TIMEOUT = Field(
    None, gt=0, le=300, description="seconds to wait at most; default: the longest a probe may take"
)


class ProbeQuery(QueryModel):
    wait: bool = Field(False, description="wait (bounded by timeout) for the stored results")
    timeout: float | None = _TIMEOUT


class CycleQuery(QueryModel):
    timeout: float | None = _TIMEOUT


async def _client_gone(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T | None:
    """Await ``work``, or stop (cancel it, answer None) when the HTTP client disconnects:
    nobody would read the answer, and a waiting handler would hold up shutdown."""
    task = asyncio.ensure_future(work)
    gone = asyncio.create_task(_client_gone(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    if task.cancelled():
        log.info("client left while waiting path=%s", request.url.path)
        return None
    return task.result()


def cycles_of(conn: HTTPConnection) -> CycleRunner:
    cycles: CycleRunner = conn.app.state.cycles
    return cycles


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


async def run_cycle(call: Call[NoBody, CycleQuery]) -> Response:
    """One monitoring cycle over every active device, now, through the queue; publishes
    ``monitor.cycle.finished`` ``{devices_checked: N}``."""
    runner = cycles_of(call.request)
    summary = await unless_client_leaves(call.request, runner.run_once(call.query.timeout))
    if summary is None:  # the client left; the cycle goes on and announces itself
        return respond(None, 204)
    return respond(summary)


async def run_background(call: Call[NoBody, NoQuery]) -> Response:
    """Start a cycle now and every ``MONITOR_PERIOD_SECONDS`` after (idempotent)."""
    cycles = cycles_of(call.request)
    started = cycles.start_loop()
    status = BackgroundStatus(
        running=True,
        already_running=not started,
        period_seconds=services_of(call.request).settings.monitor_period_seconds,
    )
    return respond(status, 202 if started else 200)


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
    Endpoint(
        "POST",
        "/tasks/run",
        run_cycle,
        query=CycleQuery,
        tags=_TAGS,
        summary="Run one monitoring cycle now",
        responses={
            200: Reply("The cycle's summary", CycleSummary),
            409: Reply("A cycle is already running", ErrorBody),
            503: QUEUE_DOWN,
        },
    ),
    Endpoint(
        "POST",
        "/tasks/run/background",
        run_background,
        tags=_TAGS,
        summary="Start the periodic monitoring loop",
        responses={
            200: Reply("It was already running", BackgroundStatus),
            202: Reply("Started", BackgroundStatus),
        },
    ),
]
