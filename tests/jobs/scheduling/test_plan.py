"""The plan of job changes (pure): its docstring example holds."""

from __future__ import annotations

import doctest

import jobs.scheduling.plan
import jobs.scheduling.slots


def test_docstring_examples_hold() -> None:
    for module in (jobs.scheduling.plan, jobs.scheduling.slots):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
