"""Recorder schedules as APScheduler triggers, pure: built and checked from user input.

A schedule has exactly one of a 5-field crontab (evaluated in UTC) or an interval in
seconds.  Intervals are aligned to ``2000-01-01T00:00:00Z``, so ``60`` fires at every
whole minute and ``3600`` at every whole hour, in every scheduler process alike.

Day-of-week numbers follow crontab (``0`` and ``7`` are Sunday, ``1-5`` Monday to
Friday); APScheduler 3 counts from Monday, so numbers are translated to names::

    >>> crontab_day_of_week("1-5")
    'mon,tue,wed,thu,fri'
    >>> crontab_day_of_week("0,6")
    'sun,sat'
    >>> check_schedule("0 8 * * 1-5", None, datetime(2026, 11, 22, tzinfo=UTC)).isoformat()
    '2026-11-23T08:00:00+00:00'
    >>> check_schedule("0 0 31 2 *", None, datetime(2026, 11, 22, tzinfo=UTC))
    Traceback (most recent call last):
    ...
    jobs.recorder.triggers.ScheduleError: cron '0 0 31 2 *' never fires
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from jobs.scheduling.slots import EPOCH

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS = 5


class ScheduleError(ValueError):
    """The schedule cannot be used; the message says why."""


def crontab_day_of_week(field: str) -> str:
    """Translate a crontab day-of-week field to names (names and ``*`` pass through)."""
    if field == "*" or any(ch.isalpha() for ch in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        days.update(_days_of(part))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _days_of(part: str) -> range | list[int]:
    span, slash, step_text = part.partition("/")
    try:
        step = int(step_text) if slash else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = int(first), int(last)
        else:
            low = int(span)
            high = 7 if slash else low  # "a/n": from a to the end, every n
    except ValueError:
        raise ScheduleError(f"day of week {part!r} is not a number, range or step") from None
    if not (0 <= low <= 7 and 0 <= high <= 7):
        raise ScheduleError(f"day of week {part!r} is outside 0-7 (0 and 7 are Sunday)")
    if low > high:
        raise ScheduleError(f"day of week range {part!r} runs backwards")
    if step < 1:
        raise ScheduleError(f"day of week step in {part!r} must be at least 1")
    return [d % 7 for d in range(low, high + 1, step)]


def cron_trigger(expr: str) -> CronTrigger:
    fields = expr.split()
    if len(fields) != CRON_FIELDS:
        raise ScheduleError(
            f"cron {expr!r} has {len(fields)} fields; expected 5: "
            "minute hour day-of-month month day-of-week"
        )
    fields[4] = crontab_day_of_week(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ScheduleError(f"cron {expr!r}: {exc}") from None


def interval_trigger(seconds: int) -> IntervalTrigger:
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise ScheduleError(
            f"interval_seconds must be between {MIN_INTERVAL_SECONDS} and "
            f"{MAX_INTERVAL_SECONDS}, not {seconds}"
        )
    return IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=UTC)


def build_trigger(cron: str | None, interval_seconds: int | None) -> BaseTrigger:
    """The trigger of a schedule with exactly one of ``cron`` / ``interval_seconds``."""
    if (cron is None) == (interval_seconds is None):
        raise ScheduleError("give exactly one of cron and interval_seconds")
    if cron is not None:
        return cron_trigger(cron)
    assert interval_seconds is not None
    return interval_trigger(interval_seconds)


def next_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    fire: datetime | None = trigger.get_next_fire_time(None, now)
    return None if fire is None else fire.astimezone(UTC)


def check_schedule(cron: str | None, interval_seconds: int | None, now: datetime) -> datetime:
    """Build the trigger and return its next fire time after ``now``, or say why not."""
    trigger = build_trigger(cron, interval_seconds)
    fire = next_fire(trigger, now)
    if fire is None:
        raise ScheduleError(f"cron {cron!r} never fires")
    return fire
