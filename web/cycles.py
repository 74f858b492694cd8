"""Probes started from the API: through the queue, then (bounded) waiting for the results.

- :func:`kick_devices` enqueues one probe job per device with a fresh run key.
- :func:`wait_for_results` waits until those run keys are stored, woken by
  ``check.created`` events and re-reading the table (events are fire and forget, so
  the table, not the event, is the answer).
- :class:`CycleRunner` runs a monitoring cycle over the active devices (``POST
  /tasks/run``) and the periodic loop of cycles (``POST /tasks/run/background``),
  publishing ``monitor.cycle.finished`` ``{devices_checked: N}`` after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from jobs.events import CHECK_CREATED, CYCLE_FINISHED
from jobs.probe.job import ProbeJobSpec, ProbeSource, load_specs, one_off_job
from jobs.probe.kick import kick_probes
from storage.repo import checks_by_run_keys
from storage.types import utcnow
from web.errors import ApiError
from web.schemas import CheckRead, CycleSummary, EnqueuedJob
from web.services import Services
from web.waiting import wait_for_stored

log = logging.getLogger(__name__)


class CycleBusy(ApiError):
    """409: a cycle is already running in this process."""

    def __init__(self) -> None:
        super().__init__(409, "a monitoring cycle is already running")


async def kick_devices(
    services: Services, specs: Sequence[ProbeJobSpec], prefix: str, source: ProbeSource
) -> list[EnqueuedJob]:
    """Enqueue one probe per device, run keys ``<prefix>:<device id>``.

    A queue that does not answer is a 503, raised before anything is reported enqueued.
    """
    jobs = [one_off_job(spec, f"{prefix}:{spec.device_id}", source) for spec in specs]
    try:
        task_ids = await kick_probes(services.broker, jobs)
    except Exception as exc:
        log.warning("kick failed prefix=%s jobs=%d error=%r", prefix, len(jobs), exc)
        raise ApiError(503, f"the job queue did not accept the jobs: {exc}") from exc
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
