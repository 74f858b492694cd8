"""What a recorder schedule job needs of a ``RecorderSchedule`` row, pure.

Specs compare by value, so :func:`jobs.scheduling.plan.plan_schedule` can tell what to add,
change and remove so that the registered jobs match the active rows::

    >>> from jobs.scheduling.plan import plan_schedule
    >>> a = ScheduleSpec(1, "cam1", "status", None, None, 60)
    >>> plan_schedule({1: a}, {}).add == [(1, a)]
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from jobs.recorder.wire import CommandName


class ScheduleRow(Protocol):
    id: int | None
    task_id: str
    cmd: str
    payload: dict[str, Any] | None
    cron: str | None
    interval_seconds: int | None


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    schedule_id: int
    task_id: str
    cmd: CommandName
    payload: dict[str, Any] | None
    cron: str | None
    interval_seconds: int | None


def spec_for(row: ScheduleRow) -> ScheduleSpec:
    assert row.id is not None
    return ScheduleSpec(
        schedule_id=row.id,
        task_id=row.task_id,
        cmd=row.cmd,  # type: ignore[arg-type]
        payload=row.payload,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
    )
