"""Maintenance windows (pure): is a device in maintenance at t?"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger

from jobs.scheduling.cron import ScheduleError
from jobs.scheduling.windows import (
    SKIP_PROBES,
    SUPPRESS_ALERTS,
    MaintenancePeriods,
    Period,
    Window,
    active_ids,
    covering,
    in_maintenance,
    occurrence,
    occurrences,
    window_of,
)

T0 = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # Sunday 02:00 in Berlin (CET)
ONE_OFF = window_of(1, [7], T0, None, timedelta(hours=1), "UTC", SUPPRESS_ALERTS)
SUNDAYS = window_of(2, None, None, "0 2 * * 0", timedelta(hours=2), "Europe/Berlin", SKIP_PROBES)
# Summer time: Sunday 02:00 in Berlin is 00:00 UTC.
SUMMER = datetime(2026, 7, 5, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "t", "expected"),
    [
        (ONE_OFF, T0 - timedelta(seconds=1), None),
        (ONE_OFF, T0, T0),
        (ONE_OFF, T0 + timedelta(minutes=59), T0),
        (ONE_OFF, T0 + timedelta(hours=1), None),  # the end is not in it
        (SUNDAYS, T0, T0),
        (SUNDAYS, T0 + timedelta(hours=1, minutes=59), T0),
        (SUNDAYS, T0 + timedelta(hours=2), None),
        (SUNDAYS, T0 - timedelta(minutes=1), None),
        (SUNDAYS, T0 + timedelta(days=1), None),  # Monday
        (SUNDAYS, T0 + timedelta(days=7, minutes=30), T0 + timedelta(days=7)),
        (SUNDAYS, SUMMER + timedelta(minutes=5), SUMMER),  # the zone's own offset
    ],
)
def test_a_window_covers_its_occurrences_only(
    window: object, t: datetime, expected: datetime | None
) -> None:
    assert covering(window, t) == expected  # type: ignore[arg-type]


MINUTELY = window_of(3, None, None, "* * * * *", timedelta(seconds=20), "UTC", SKIP_PROBES)


@pytest.mark.parametrize("window", [ONE_OFF, SUNDAYS, MINUTELY])
def test_the_remembered_answer_is_the_one_computed_afresh_in_any_order(window: Window) -> None:
    steps = [timedelta(seconds=s) for s in range(-7200, 4 * 86400, 617)]
    for t in [T0 + d for d in steps] + [T0 + d for d in reversed(steps)]:
        assert covering(window, t) == occurrence(replace(window, memo=[]), t)[0], t


class CountingTrigger(CronTrigger):  # type: ignore[misc]
    calls = 0

    def get_next_fire_time(self, *args: Any) -> Any:
        CountingTrigger.calls += 1
        return super().get_next_fire_time(*args)


def test_a_cron_is_not_computed_again_while_its_answer_holds() -> None:
    trigger = CountingTrigger(minute=0, hour=2, day_of_week="sun", timezone="Europe/Berlin")
    window = replace(SUNDAYS, trigger=trigger, memo=[])
    for minutes in range(0, 120, 5):  # one occurrence, then the week until the next
        assert covering(window, T0 + timedelta(minutes=minutes)) == T0
    assert covering(window, T0 + timedelta(days=3)) is None
    assert covering(window, T0 + timedelta(days=6)) is None
    assert CountingTrigger.calls == 2


def test_a_window_covers_its_devices_or_all_and_filters_by_mode() -> None:
    windows = [ONE_OFF, SUNDAYS]
    at = T0 + timedelta(minutes=10)
    assert in_maintenance(windows, 7, at) is ONE_OFF
    assert in_maintenance(windows, 8, at) is SUNDAYS  # every device
    assert in_maintenance(windows, 7, at, SKIP_PROBES) is SUNDAYS
    assert in_maintenance(windows, 8, at, SUPPRESS_ALERTS) is None
    assert in_maintenance(windows, 7, T0 + timedelta(days=1)) is None
    assert active_ids(windows, at) == {1, 2}
    assert active_ids(windows, T0 + timedelta(hours=1, minutes=30)) == {2}


HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
# Sunday 02:00 Berlin for two hours, made on Tuesday 2026-11-24 (CET: 01:00 UTC).
SUNDAYS_SINCE = replace(SUNDAYS, created_at=T0 - timedelta(days=5), memo=[])
# Made in the middle of an occurrence: that one counts from then.
SUNDAYS_MID = replace(SUNDAYS, created_at=T0 + HOUR, memo=[])


def p(start: datetime, hours: float) -> Period:
    return (start, start + timedelta(hours=hours))


@pytest.mark.parametrize(
    ("window", "since", "until", "expected"),
    [
        # a one-off window: itself when it overlaps the span, not clipped to it
        (ONE_OFF, T0 - HOUR, T0 + HOUR, [p(T0, 1)]),
        (ONE_OFF, T0 + timedelta(minutes=30), T0 + HOUR, [p(T0, 1)]),
        (ONE_OFF, T0 + HOUR, T0 + 2 * HOUR, []),  # its end is not in it
        (ONE_OFF, T0 - 2 * HOUR, T0, []),
        # recurring, no creation time: every occurrence overlapping the span
        (SUNDAYS, T0 - WEEK, T0 + WEEK + HOUR, [p(T0 - WEEK, 2), p(T0, 2), p(T0 + WEEK, 2)]),
        (SUNDAYS, T0 + HOUR, T0 + 2 * HOUR, [p(T0, 2)]),  # in force at the span's start
        (SUNDAYS, T0 + 2 * HOUR, T0 + WEEK, []),
        # counted from the window's creation on
        (SUNDAYS_SINCE, T0 - 4 * WEEK, T0 + WEEK + HOUR, [p(T0, 2), p(T0 + WEEK, 2)]),
        (SUNDAYS_MID, T0 - WEEK, T0 + 3 * HOUR, [p(T0 + HOUR, 1)]),
        # the zone's own offset: 02:00 Berlin is 00:00 UTC in summer
        (SUNDAYS, SUMMER - HOUR, SUMMER + HOUR, [p(SUMMER, 2)]),
    ],
)
def test_the_occurrences_of_a_window_over_a_span(
    window: Window, since: datetime, until: datetime, expected: list[Period]
) -> None:
    assert occurrences(window, since, until) == expected


def test_occurrences_stop_at_the_limit() -> None:
    found = occurrences(MINUTELY, T0, T0 + timedelta(days=1), limit=100)
    assert len(found) == 100 and found[0] == (T0, T0 + timedelta(seconds=20))
    assert found[-1][0] == T0 + timedelta(minutes=99)


def test_maintenance_periods_of_a_device_are_those_of_the_windows_covering_it() -> None:
    periods = MaintenancePeriods([ONE_OFF, SUNDAYS], T0 - WEEK, T0 + HOUR)
    assert sorted(periods.of(7)) == [p(T0 - WEEK, 2), p(T0, 1), p(T0, 2)]  # both windows
    assert periods.of(8) == [p(T0 - WEEK, 2), p(T0, 2)]  # every device's only
    assert MaintenancePeriods([ONE_OFF], T0 + WEEK, T0 + 2 * WEEK).of(7) == []


@pytest.mark.parametrize(
    ("start", "cron", "duration", "zone", "mode", "message"),
    [
        (None, None, 60, "UTC", SUPPRESS_ALERTS, "exactly one of start"),
        (T0, "0 2 * * 0", 60, "UTC", SUPPRESS_ALERTS, "exactly one of start"),
        (T0, None, 0, "UTC", SUPPRESS_ALERTS, "duration must be positive"),
        (T0, None, -60, "UTC", SUPPRESS_ALERTS, "duration must be positive"),
        (None, "0 2 * *", 60, "UTC", SUPPRESS_ALERTS, "has 4 fields"),
        (None, "0 25 * * *", 60, "UTC", SUPPRESS_ALERTS, "higher than the maximum"),
        (None, "0 2 * * 0", 60, "Mars/Olympus", SUPPRESS_ALERTS, "not an IANA time zone"),
        (T0, None, 60, "UTC", "sometimes", "mode must be one of"),
        (datetime.max.replace(tzinfo=UTC), None, 60, "UTC", SUPPRESS_ALERTS, "past the last"),
    ],
)
def test_a_window_that_cannot_be_used_says_why(
    start: datetime | None, cron: str | None, duration: int, zone: str, mode: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        window_of(1, None, start, cron, timedelta(seconds=duration), zone, mode)


def test_docstring_examples_hold() -> None:
    import doctest

    import jobs.scheduling.windows

    result = doctest.testmod(jobs.scheduling.windows)
    assert result.attempted > 0 and result.failed == 0
