"""Recorder schedules as APScheduler triggers, pure: built and checked from user input.

A schedule has exactly one of a 5-field crontab (evaluated in UTC) or an interval in
seconds.  Intervals are aligned to ``2000-01-01T00:00:00Z``, so ``60`` fires at every
whole minute and ``3600`` at every whole hour, in every scheduler process alike.

A crontab's day-of-week numbers are crontab's (``0`` and ``7`` are Sunday, ``1-5`` Monday
to Friday: :mod:`jobs.scheduling.cron`)::

    >>> check_schedule("0 8 * * 1-5", None, datetime(2026, 11, 22, tzinfo=UTC)).isoformat()
    '2026-11-23T08:00:00+00:00'
    >>> check_schedule("0 0 31 2 *", None, datetime(2026, 11, 22, tzinfo=UTC))
    Traceback (most recent call last):
    ...
    jobs.scheduling.cron.ScheduleError: cron '0 0 31 2 *' never fires
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from jobs.scheduling.cron import ScheduleError, cron_trigger
from jobs.scheduling.slots import EPOCH


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
