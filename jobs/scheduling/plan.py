"""The plan of job changes, pure: what to add, change and remove so that the jobs a
scheduler registered match the rows it wants (specs compare by value)::

    >>> plan_schedule({1: "a", 2: "b"}, {2: "c", 3: "d"})
    SchedulePlan(add=[(1, 'a')], remove=[3], change=[(2, 'b')])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

Spec = TypeVar("Spec")


@dataclass(frozen=True, slots=True)
class SchedulePlan(Generic[Spec]):
    add: list[tuple[int, Spec]]
    remove: list[int]
    change: list[tuple[int, Spec]]

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.change)


def plan_schedule(
    desired: Mapping[int, Spec], registered: Mapping[int, Spec]
) -> SchedulePlan[Spec]:
    """What to add, remove and change so that ``registered`` becomes ``desired``."""
    add = [(key, spec) for key, spec in desired.items() if key not in registered]
    remove = [key for key in registered if key not in desired]
    change = [
        (key, spec)
        for key, spec in desired.items()
        if key in registered and registered[key] != spec
    ]
    return SchedulePlan(add=add, remove=sorted(remove), change=change)
