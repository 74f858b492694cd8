"""Recorder schedule triggers and slots, pure: tables of cron/interval, now -> next fire
time and slot."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest

import jobs.recorder.plan
import jobs.recorder.slots
import jobs.recorder.triggers
from jobs.recorder.plan import ScheduleSpec
from jobs.recorder.slots import slot_for, slot_key
from jobs.recorder.triggers import build_trigger, check_schedule, next_fire
from jobs.scheduling.cron import ScheduleError
from jobs.scheduling.plan import plan_schedule


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2026-11-23 is a Monday.
MON_0759 = utc("2026-11-23T07:59:00")


@pytest.mark.parametrize(
    ("cron", "interval", "now", "expected"),
    [
        ("0 8 * * 1-5", None, MON_0759, "2026-11-23T08:00:00"),
        ("0 8 * * 1-5", None, utc("2026-11-27T08:00:01"), "2026-11-30T08:00:00"),  # Fri->Mon
        ("0 18 * * mon-fri", None, MON_0759, "2026-11-23T18:00:00"),
        ("0 8 * * 0", None, MON_0759, "2026-11-29T08:00:00"),  # Sunday, not Monday
        ("*/15 * * * *", None, utc("2026-11-23T10:07:30"), "2026-11-23T10:15:00"),
        ("0 0 29 2 *", None, MON_0759, "2028-02-29T00:00:00"),
        (None, 60, utc("2026-11-23T10:07:30"), "2026-11-23T10:08:00"),
        (None, 3600, utc("2026-11-23T10:07:30"), "2026-11-23T11:00:00"),
        (None, 1, utc("2026-11-23T10:07:30.5"), "2026-11-23T10:07:31"),
    ],
)
def test_next_fire_time_in_utc(
    cron: str | None, interval: int | None, now: datetime, expected: str
) -> None:
    fire = check_schedule(cron, interval, now)
    assert fire == utc(expected)
    assert fire.tzinfo is UTC


@pytest.mark.parametrize(
    ("cron", "interval", "says"),
    [
        (None, None, "exactly one of cron and interval_seconds"),
        ("* * * * *", 60, "exactly one of cron and interval_seconds"),
        ("* * *", None, "has 3 fields; expected 5"),
        ("61 * * * *", None, "the last value (61) is higher than the maximum value (59)"),
        ("0 8 * * 8", None, "outside 0-7"),
        ("0 8 * * 5-1", None, "runs backwards"),
        ("0 8 * * 1-", None, "not a number, range or step"),
        ("0 8 * * x-1", None, 'Invalid weekday name "x"'),
        ("0 8 * * */0", None, "at least 1"),
        ("*/0 * * * *", None, "Increment must be higher than 0"),
        ("0 0 31 2 *", None, "never fires"),
        (None, 0, "interval_seconds must be between 1 and"),
    ],
)
def test_bad_schedules_say_why(cron: str | None, interval: int | None, says: str) -> None:
    with pytest.raises(ScheduleError) as info:
        check_schedule(cron, interval, MON_0759)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("cron", "interval", "now", "slot"),
    [
        # on time, a hair early (timer resolution), late within the slot
        (None, 60, "2026-11-23T10:08:00.001", "2026-11-23T10:08:00"),
        (None, 60, "2026-11-23T10:07:59.970", "2026-11-23T10:08:00"),
        (None, 60, "2026-11-23T10:08:59.900", "2026-11-23T10:08:00"),
        (None, 1, "2026-11-23T10:08:03.020", "2026-11-23T10:08:03"),
        (None, 86400, "2026-11-23T23:59:00", "2026-11-23T00:00:00"),
        ("0 8 * * 1-5", None, "2026-11-23T08:00:00.004", "2026-11-23T08:00:00"),
        ("0 8 * * 1-5", None, "2026-11-23T07:59:59.990", "2026-11-23T08:00:00"),
        # a coalesced catch-up run on Sunday belongs to Friday's slot
        ("0 8 * * 1-5", None, "2026-11-29T12:00:00", "2026-11-27T08:00:00"),
        ("* 8 * * *", None, "2026-11-23T20:00:00", "2026-11-23T08:59:00"),
        ("*/15 * * * *", None, "2026-11-23T10:29:59", "2026-11-23T10:15:00"),
        ("0 0 29 2 *", None, "2026-11-23T10:00:00", "2024-02-29T00:00:00"),
    ],
)
def test_the_slot_is_the_latest_fire_time_at_or_just_before_now(
    cron: str | None, interval: int | None, now: str, slot: str
) -> None:
    assert slot_for(build_trigger(cron, interval), utc(now)) == utc(slot)


def test_two_processes_firing_the_same_slot_compute_the_same_key() -> None:
    trigger_a, trigger_b = build_trigger("30 9 * * *", None), build_trigger("30 9 * * *", None)
    fired = utc("2026-11-23T09:30:00")
    keys = {
        slot_key(4, slot)  # type: ignore[arg-type]
        for slot in (
            slot_for(trigger_a, fired + timedelta(milliseconds=3)),
            slot_for(trigger_b, fired - timedelta(milliseconds=20)),
        )
    }
    assert keys == {"recorder:4:20261123T093000.000000Z"}


def test_a_schedule_that_has_never_fired_has_no_slot() -> None:
    trigger = build_trigger("0 0 29 2 *", None)
    assert next_fire(trigger, MON_0759) == utc("2028-02-29T00:00:00")
    # the previous leap day (2020-02-29) still counts as this schedule's last slot
    assert slot_for(trigger, utc("2024-02-28T00:00:00"), skew=timedelta(0)) is not None
    assert slot_for(build_trigger(None, 60), utc("2000-01-01T00:00:00")) == utc(
        "2000-01-01T00:00:00"
    )
    assert slot_for(build_trigger(None, 60), utc("1999-12-31T23:59:00")) is None


def spec(schedule_id: int, **changes: object) -> ScheduleSpec:
    fields: dict[str, object] = {
        "schedule_id": schedule_id,
        "task_id": "cam1",
        "cmd": "status",
        "payload": None,
        "cron": None,
        "interval_seconds": 60,
    }
    fields.update(changes)
    return ScheduleSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("desired", "registered", "add", "change", "remove"),
    [
        ({}, {}, [], [], []),
        ({1: spec(1)}, {}, [spec(1)], [], []),
        ({}, {1: spec(1)}, [], [], [1]),
        ({1: spec(1)}, {1: spec(1)}, [], [], []),
        (
            {1: spec(1, cron="0 8 * * *", interval_seconds=None)},
            {1: spec(1)},
            [],
            [spec(1, cron="0 8 * * *", interval_seconds=None)],
            [],
        ),
        (
            {1: spec(1, payload={"segment_time": 60.0})},
            {1: spec(1)},
            [],
            [spec(1, payload={"segment_time": 60.0})],
            [],
        ),
        ({2: spec(2)}, {3: spec(3), 1: spec(1)}, [spec(2)], [], [1, 3]),
    ],
)
def test_plan_adds_changes_and_removes_jobs(
    desired: dict[int, ScheduleSpec],
    registered: dict[int, ScheduleSpec],
    add: list[ScheduleSpec],
    change: list[ScheduleSpec],
    remove: list[int],
) -> None:
    result = plan_schedule(desired, registered)
    added = [s for _, s in result.add]
    changed = [s for _, s in result.change]
    assert (added, changed, result.remove) == (add, change, remove)
    assert result.empty == (not (add or change or remove))


@pytest.mark.parametrize(
    "module", [jobs.recorder.triggers, jobs.recorder.slots, jobs.recorder.plan]
)
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
