"""A probe, as the schedule knows it and as the queue carries it.

- :class:`ProbeJobSpec`: what a scheduler needs of a device (compared by value, so a
  changed interval or address reschedules its job); read from the ``devices`` table by
  :func:`load_specs`.
- :class:`ProbeJob`: the message of one run, the one shape on the queue (everything the
  worker needs, no lookup), built from a spec by :func:`scheduled_job` (a slot) or
  :func:`one_off_job` (``POST /jobs/probe``, ``POST /tasks/run``).

The enqueuing side (scheduler, web) imports this module and :mod:`jobs.probe.kick` only,
never what runs probes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.settings import Settings
from storage.repo import probe_fields

# Where a queued probe came from: its device's schedule, POST /jobs/probe, a monitoring
# cycle (POST /tasks/run, the background loop).  Stored results add "entered"
# (jobs.probe.row.CheckSource).
ProbeSource = Literal["schedule", "manual", "cycle"]


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """How a device is checked beyond its address: what the job message carries.

    The defaults are the behaviour of a device that sets nothing (and of a message kicked
    by an older scheduler): GET, follow redirects, verify TLS, the kind's default
    conditions, never degraded.  Compared by value (a changed setting reschedules).
    """

    method: str | None = None  # None: GET
    headers: tuple[tuple[str, str], ...] | None = None
    body: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True
    conditions: tuple[str, ...] | None = None  # None: default_conditions(kind)
    degraded_when: tuple[str, ...] | None = None

    def job_fields(self) -> dict[str, Any]:
        """The fields of :class:`ProbeJob` these settings fill."""
        return {
            "method": self.method,
            "headers": dict(self.headers) if self.headers is not None else None,
            "body": self.body,
            "follow_redirects": self.follow_redirects,
            "verify_tls": self.verify_tls,
            "conditions": list(self.conditions) if self.conditions is not None else None,
            "degraded_when": list(self.degraded_when) if self.degraded_when is not None else None,
        }


DEFAULT_CHECK = CheckSettings()


@dataclass(frozen=True, slots=True)
class ProbeJobSpec:
    """What the scheduler needs to know of a device to schedule and kick its probe."""

    device_id: int
    address: str
    interval: int
    timeout: float
    check: CheckSettings = DEFAULT_CHECK
    # The device row's updated_at (the API stamps it on every change): names the one
    # probe kicked when the scheduler first sees this version (:func:`first_job`).  Not
    # compared: a change of the name alone does not reschedule.
    changed_at: datetime | None = field(default=None, compare=False)


# The check fields of a message and their defaults: left out of the message when at the
# default (most devices), so the message stays small and an old worker's shape.
_CHECK_DEFAULTS: dict[str, Any] = DEFAULT_CHECK.job_fields()


class ProbeJob(BaseModel):
    """The message of one probe task: everything needed to run it without a lookup.

    The check fields (``method`` ... ``degraded_when``) are optional on the wire: a
    message without them (from an older scheduler) runs with the defaults, and a message
    built here leaves out those at their default.
    """

    model_config = ConfigDict(extra="ignore")

    device_id: int
    address: str
    timeout: float = Field(gt=0)
    run_key: str = Field(min_length=1, max_length=200)
    slot_at: datetime | None = None
    source: ProbeSource = "schedule"
    method: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    follow_redirects: bool = True
    verify_tls: bool = True
    conditions: list[str] | None = None
    degraded_when: list[str] | None = None

    @model_serializer(mode="wrap")
    def _small(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key, default in _CHECK_DEFAULTS.items():
            if key in data and data[key] == default:
                del data[key]
        return data


def slot_key(device_id: int, slot: datetime) -> str:
    """The run key of a scheduled probe: one per (device, slot); also its Nats-Msg-Id."""
    return f"probe:{device_id}:{slot.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"


def scheduled_job(spec: ProbeJobSpec, slot: datetime) -> ProbeJob:
    return ProbeJob(
        device_id=spec.device_id,
        address=spec.address,
        timeout=spec.timeout,
        run_key=slot_key(spec.device_id, slot),
        slot_at=slot,
        source="schedule",
        **spec.check.job_fields(),
    )


def first_key(spec: ProbeJobSpec) -> str:
    """The run key of the probe kicked when a device is created, re-activated or has its
    address or check changed: ``probe:<id>:new:<updated_at>``, the same in every scheduler
    that reads that version of the row (so JetStream de-duplication and the idempotent
    store leave one run), and never a slot's (:func:`slot_key`: no ``new`` part)."""
    changed = spec.changed_at or datetime.fromtimestamp(0, UTC)
    return f"probe:{spec.device_id}:new:{changed.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"


def first_job(spec: ProbeJobSpec) -> ProbeJob:
    """The probe of a device new to the schedule: ``source`` ``schedule`` (the scheduler
    kicks it on the device's behalf, no one asked) with no ``slot_at`` (it is no slot)."""
    return one_off_job(spec, first_key(spec), "schedule")


def one_off_job(spec: ProbeJobSpec, run_key: str, source: ProbeSource) -> ProbeJob:
    return ProbeJob(
        device_id=spec.device_id,
        address=spec.address,
        timeout=spec.timeout,
        run_key=run_key,
        slot_at=None,
        source=source,
        **spec.check.job_fields(),
    )


def spec_for(row: Row[Any], settings: Settings) -> ProbeJobSpec:
    """The probe job of a device (a row of :func:`probe_fields`)."""
    return ProbeJobSpec(
        device_id=row.id,
        address=row.address,
        interval=row.interval_seconds or settings.monitor_period_seconds,
        timeout=row.timeout_seconds or settings.probe_timeout_seconds,
        check=check_settings(row),
        changed_at=row.updated_at,
    )


def check_settings(row: Any) -> CheckSettings:
    """The check settings of a device (a row of :func:`probe_fields`, or a device)."""
    method, headers, body = row.method, row.headers, row.body
    conditions, degraded = row.conditions, row.degraded_when
    follow, verify = row.follow_redirects, row.verify_tls
    if (method, headers, body, conditions, degraded) == (None,) * 5 and follow and verify:
        return DEFAULT_CHECK  # most devices: no tuples built
    return CheckSettings(
        method=method,
        headers=tuple(headers.items()) if headers is not None else None,
        body=body,
        follow_redirects=bool(follow),
        verify_tls=bool(verify),
        conditions=tuple(conditions) if conditions is not None else None,
        degraded_when=tuple(degraded) if degraded is not None else None,
    )


async def load_specs(
    bind: AsyncEngine | AsyncConnection,
    settings: Settings,
    *,
    ids: Sequence[int] | None = None,
    active_only: bool = False,
) -> dict[int, ProbeJobSpec]:
    """The probe jobs of the devices among ``ids`` (all when None), by device id; ``bind``
    an engine or a connection already open."""
    rows = await probe_fields(bind, ids=ids, active_only=active_only)
    return {row.id: spec_for(row, settings) for row in rows}
