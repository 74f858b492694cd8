"""Crontab expressions (pure): crontab's day-of-week numbers, as APScheduler's names."""

from __future__ import annotations

import doctest

import pytest

import jobs.scheduling.cron
from jobs.scheduling.cron import crontab_day_of_week


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sun,sat"),
        ("6-7", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("3/2", "sun,wed,fri"),  # 3, 5, 7
        ("mon-fri", "mon-fri"),
        ("sat,sun", "sat,sun"),
    ],
)
def test_crontab_day_numbers_become_names_sunday_first(field: str, names: str) -> None:
    assert crontab_day_of_week(field) == names


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(jobs.scheduling.cron)
    assert result.attempted > 0 and result.failed == 0
