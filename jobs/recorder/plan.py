"""Which APScheduler jobs the recorder scheduler should hold, pure.

A :class:`ScheduleSpec` is what a job needs of a ``RecorderSchedule`` row; the plan says
what to add, change and remove so that the registered jobs match the active rows::

    >>> a = ScheduleSpec(1, "cam1", "status", None, None, 60)
    >>> plan({1: a}, {}).add == [a]
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jobs.recorder.models import CommandName


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


@dataclass(frozen=True, slots=True)
class Plan:
    add: list[ScheduleSpec]
    change: list[ScheduleSpec]
    remove: list[int]

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)


def plan(desired: Mapping[int, ScheduleSpec], registered: Mapping[int, ScheduleSpec]) -> Plan:
    return Plan(
        add=[s for k, s in desired.items() if k not in registered],
        change=[s for k, s in desired.items() if k in registered and registered[k] != s],
        remove=sorted(k for k in registered if k not in desired),
    )
