"""The plan of job changes (pure): what to add, remove and change; its docstring example holds."""

from __future__ import annotations

import doctest

import jobs.scheduling.plan
import jobs.scheduling.slots
from jobs.probe.job import ProbeJobSpec
from jobs.scheduling.plan import plan_schedule


def test_docstring_examples_hold() -> None:
    for module in (jobs.scheduling.plan, jobs.scheduling.slots):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def spec(device_id: int, interval: int = 60, address: str = "http://a/") -> ProbeJobSpec:
    return ProbeJobSpec(device_id=device_id, address=address, interval=interval, timeout=5)


def test_plan_schedule_adds_removes_and_changes() -> None:
    registered = {1: spec(1), 2: spec(2), 3: spec(3)}
    desired = {1: spec(1), 3: spec(3, interval=30), 4: spec(4)}
    plan = plan_schedule(desired, registered)
    assert plan.add == [(4, spec(4))]
    assert plan.remove == [2]
    assert plan.change == [(3, spec(3, interval=30))]
    assert not plan.empty


def test_plan_schedule_of_equal_sets_is_empty() -> None:
    same = {1: spec(1), 2: spec(2, address="http://b/")}
    assert plan_schedule(same, dict(same)).empty
