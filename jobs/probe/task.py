"""The probe task: probe, store (idempotently, keyed by ``run_key``), then announce.

The task takes what it uses (:class:`ProbeDeps`: the check tools (HTTP clients,
certificate cache, the recorder check), the result writer, the event publisher, the
limits), not the worker that holds them: ``jobs.worker`` builds them and registers the
task.  The check itself, by kind and judged by the conditions, is
:func:`jobs.probe.check.run_check`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from core.settings import Settings
from jobs.events import CHECK_CREATED, EventPublisher
from jobs.metrics import count_probe
from jobs.probe.check import CheckTools, run_check
from jobs.probe.job import ProbeJob
from jobs.probe.row import check_event_payload, check_row
from jobs.scheduling.calendar import MaintenanceCalendar
from storage.types import isoformat_z, utcnow
from storage.writer import BatchWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    """The bounds a worker puts on every probe, whatever its job asks (the cap on body
    bytes read is the check tools', :attr:`CheckTools.body_max_bytes`)."""

    max_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> ProbeLimits:
        return cls(max_timeout=settings.probe_max_timeout_seconds)


class ProbeDeps(Protocol):
    """What a probe task needs (a :class:`jobs.worker.WorkerRuntime` has it)."""

    @property
    def name(self) -> str: ...  # the worker's name, in the event
    @property
    def check_tools(self) -> CheckTools: ...
    @property
    def checks(self) -> BatchWriter: ...
    @property
    def events(self) -> EventPublisher: ...
    @property
    def probe_limits(self) -> ProbeLimits: ...
    @property
    def maintenance(self) -> MaintenanceCalendar: ...  # results in a window are marked


async def probe_device(job: ProbeJob, deps: ProbeDeps) -> dict[str, Any]:
    """Probe, store (idempotently, keyed by ``run_key``), then announce what was stored
    (a run stored by an earlier delivery is not announced twice)."""
    limits = deps.probe_limits
    timeout = min(job.timeout, limits.max_timeout)
    started_at = utcnow()  # lateness (slot -> probe start) is read from the event
    started = time.perf_counter()
    result = await run_check(job, deps.check_tools, timeout)
    duration_s = time.perf_counter() - started
    checked_at = utcnow()
    row = check_row(
        device_id=job.device_id,
        run_key=job.run_key,
        source=job.source,
        result=result,
        checked_at=checked_at,
        slot_at=job.slot_at,
        in_maintenance=await deps.maintenance.window_for(job.device_id, checked_at) is not None,
    )
    # Every run counts, a redelivered one too: it was probed again.
    count_probe(
        row["outcome"],  # check_row sets it, from status_up when nothing judged
        duration_s,
        (started_at - job.slot_at).total_seconds() if job.slot_at is not None else None,
    )
    # Returns after the batch holding this row committed: the ack follows the commit.
    inserted = await deps.checks.write(row) is not None
    payload = check_event_payload(row) | {
        "worker": deps.name,
        "started_at": isoformat_z(started_at),
    }
    if inserted:
        await deps.events.publish(CHECK_CREATED, payload)
    else:  # redelivered after an earlier attempt stored (and announced) this run
        log.info("probe result already stored run_key=%s; not announced again", job.run_key)
    log.debug(
        "probe device=%d outcome=%s latency_ms=%s code=%s error=%s",
        job.device_id,
        result.outcome,
        result.latency_ms,
        result.status_code,
        result.error,
    )
    return payload
