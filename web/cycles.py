"""Monitoring cycles: ``POST /tasks/run`` and ``/tasks/run/background``.

:class:`CycleRunner` runs a monitoring cycle over the active devices (``POST
/tasks/run``) and the periodic loop of cycles (``POST /tasks/run/background`` starts it,
``DELETE`` stops it, ``GET`` says whether it runs), each
through the queue like ``POST /jobs/probe`` (:mod:`web.probe_runs`), publishing
``monitor.cycle.finished`` ``{devices_checked: N}`` after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from starlette.requests import HTTPConnection
from starlette.responses import Response

from jobs.events import CYCLE_FINISHED
from jobs.probe.job import load_specs
from storage.types import utcnow
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, QueryModel, Reply, respond
from web.errors import ApiError, ErrorBody
from web.probe_runs import QUEUE_DOWN, WAIT_TIMEOUT, kick_devices, wait_for_results
from web.schemas import BackgroundStatus, CycleSummary
from web.services import Services, services_of
from web.waiting import unless_client_leaves

log = logging.getLogger(__name__)


class CycleBusy(ApiError):
    """409: a cycle is already running in this process."""

    def __init__(self) -> None:
        super().__init__(409, "a monitoring cycle is already running")


class CycleRunner:
    """Monitoring cycles of this web process: one at a time, and the periodic loop."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._current: asyncio.Task[CycleSummary] | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """A cycle is running now."""
        return self._current is not None and not self._current.done()

    @property
    def looping(self) -> bool:
        return self._loop is not None and not self._loop.done()

    @property
    def default_timeout(self) -> float:
        return self.services.settings.longest_task_seconds

    async def run_once(self, timeout: float | None = None) -> CycleSummary:
        """Probe every active device through the queue; :class:`CycleBusy` if one runs.

        The cycle is a task of its own: a caller that stops waiting (an HTTP client that
        went away) does not stop it; it still finishes and announces itself.
        """
        if self.busy:
            raise CycleBusy
        task = asyncio.create_task(
            self._cycle(timeout or self.default_timeout), name="monitor-cycle"
        )
        task.add_done_callback(_retrieve)
        self._current = task
        return await asyncio.shield(task)

    async def _cycle(self, timeout: float) -> CycleSummary:
        cycle_id = uuid.uuid4().hex[:12]
        started = utcnow()
        specs = await load_specs(self.services.engine, self.services.settings, active_only=True)
        jobs = await kick_devices(self.services, list(specs.values()), f"cycle:{cycle_id}", "cycle")
        results = await wait_for_results(self.services, [j.run_key for j in jobs], timeout)
        stored = [results[j.run_key] for j in jobs if j.run_key in results]
        summary = CycleSummary(
            cycle_id=cycle_id,
            devices_checked=len(stored),
            devices_total=len(jobs),
            up=sum(r.status_up for r in stored),
            down=sum(not r.status_up for r in stored),
            missing=[j.device_id for j in jobs if j.run_key not in results],
            started_at=started,
            finished_at=utcnow(),
        )
        await self.services.events.publish(CYCLE_FINISHED, summary.model_dump(mode="json"))
        log.info(
            "cycle finished cycle=%s checked=%d total=%d up=%d down=%d missing=%d",
            cycle_id,
            summary.devices_checked,
            summary.devices_total,
            summary.up,
            summary.down,
            len(summary.missing),
        )
        return summary

    async def stop_loop(self) -> bool:
        """Stop the periodic loop; False when it was not running.  A cycle already under
        way finishes and announces itself (its probes are queued already)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.done():
            return False
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await loop
        log.info("cycle loop stopped")
        return True

    def start_loop(self) -> bool:
        """Start the periodic loop; False when it was already running."""
        if self.looping:
            return False
        self._loop = asyncio.create_task(self._run_loop(), name="monitor-cycle-loop")
        log.info("cycle loop started period_s=%d", self.services.settings.monitor_period_seconds)
        return True

    async def _run_loop(self) -> None:
        period = self.services.settings.monitor_period_seconds
        while True:
            try:
                await self.run_once()
            except CycleBusy:
                log.info("cycle loop: a cycle is already running; skipping this one")
            except Exception:  # already logged by _retrieve; try again next period
                pass
            await asyncio.sleep(period)

    async def stop(self) -> None:
        """Stop the loop and any cycle still running (the app is shutting down)."""
        for task in (self._loop, self._current):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop = self._current = None


def _retrieve(task: asyncio.Task[CycleSummary]) -> None:
    """Read the outcome of a cycle whose caller stopped waiting, so a failure is logged once."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("cycle failed error=%r", task.exception())


class CycleQuery(QueryModel):
    timeout: float | None = WAIT_TIMEOUT


def cycles_of(conn: HTTPConnection) -> CycleRunner:
    cycles: CycleRunner = conn.app.state.cycles
    return cycles


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


async def background_state(call: Call[NoBody, NoQuery]) -> Response:
    """Whether the periodic loop runs in this web process."""
    cycles = cycles_of(call.request)
    return respond(
        BackgroundStatus(
            running=cycles.looping,
            already_running=cycles.looping,
            period_seconds=services_of(call.request).settings.monitor_period_seconds,
        )
    )


async def stop_background(call: Call[NoBody, NoQuery]) -> Response:
    """Stop the periodic loop (idempotent); a cycle already running still finishes."""
    cycles = cycles_of(call.request)
    was_running = await cycles.stop_loop()
    return respond(
        BackgroundStatus(
            running=False,
            already_running=was_running,
            period_seconds=services_of(call.request).settings.monitor_period_seconds,
        )
    )


_TAGS = ("jobs",)

ENDPOINTS: list[AnyEndpoint] = [
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
    Endpoint(
        "GET",
        "/tasks/run/background",
        background_state,
        tags=_TAGS,
        summary="Whether the periodic monitoring loop runs",
        responses={200: Reply("Its state", BackgroundStatus)},
    ),
    Endpoint(
        "DELETE",
        "/tasks/run/background",
        stop_background,
        tags=_TAGS,
        summary="Stop the periodic monitoring loop",
        responses={200: Reply("Stopped (already_running: it was running)", BackgroundStatus)},
    ),
]
