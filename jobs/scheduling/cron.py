"""Crontab expressions as APScheduler triggers, pure (recorder schedules, maintenance
windows).

Day-of-week numbers follow crontab (``0`` and ``7`` are Sunday); APScheduler 3 counts
from Monday, so numbers are translated to names::

    >>> crontab_day_of_week("1-5")
    'mon,tue,wed,thu,fri'
    >>> crontab_day_of_week("0,6")
    'sun,sat'
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from apscheduler.triggers.cron import CronTrigger

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


def cron_trigger(expr: str, timezone: tzinfo = UTC) -> CronTrigger:
    """A 5-field crontab evaluated in ``timezone``; day-of-week numbers as crontab's."""
    fields = expr.split()
    if len(fields) != CRON_FIELDS:
        raise ScheduleError(
            f"cron {expr!r} has {len(fields)} fields; expected 5: "
            "minute hour day-of-month month day-of-week"
        )
    fields[4] = crontab_day_of_week(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ScheduleError(f"cron {expr!r}: {exc}") from None
