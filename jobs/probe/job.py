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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage.repo import probe_fields

# Where a queued probe came from: its device's schedule, POST /jobs/probe, a monitoring
# cycle (POST /tasks/run, the background loop).  Stored results add "entered"
# (jobs.probe.row.CheckSource).
ProbeSource = Literal["schedule", "manual", "cycle"]


@dataclass(frozen=True, slots=True)
class ProbeJobSpec:
    """What the scheduler needs to know of a device to schedule and kick its probe."""

    device_id: int
    address: str
    interval: int
    timeout: float


class ProbeJob(BaseModel):
    """The message of one probe task: everything needed to run it without a lookup."""

    model_config = ConfigDict(extra="ignore")

    device_id: int
    address: str
    timeout: float = Field(gt=0)
    run_key: str = Field(min_length=1, max_length=200)
    slot_at: datetime | None = None
    source: ProbeSource = "schedule"


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
    )


def one_off_job(spec: ProbeJobSpec, run_key: str, source: ProbeSource) -> ProbeJob:
    return ProbeJob(
        device_id=spec.device_id,
        address=spec.address,
        timeout=spec.timeout,
        run_key=run_key,
        slot_at=None,
        source=source,
    )


def spec_for(row: Row[Any], settings: Settings) -> ProbeJobSpec:
    """The probe job of a device (a row of :func:`probe_fields`)."""
    return ProbeJobSpec(
        device_id=row.id,
        address=row.address,
        interval=row.interval_seconds or settings.monitor_period_seconds,
        timeout=row.timeout_seconds or settings.probe_timeout_seconds,
    )


async def load_specs(
    engine: AsyncEngine,
    settings: Settings,
    *,
    ids: Sequence[int] | None = None,
    active_only: bool = False,
) -> dict[int, ProbeJobSpec]:
    """The probe jobs of the devices among ``ids`` (all when None), by device id."""
    rows = await probe_fields(engine, ids=ids, active_only=active_only)
    return {row.id: spec_for(row, settings) for row in rows}
