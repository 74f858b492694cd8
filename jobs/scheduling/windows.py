"""Maintenance windows, pure: is device D in maintenance at time t, and which periods of
a span of time were maintenance for it (:class:`MaintenancePeriods`, left out of uptime)?

A window covers its devices (``device_ids``; None is every device) either once, from
``start`` for ``duration``, or every time its ``cron`` fires (evaluated in the window's
IANA ``timezone``) for ``duration`` after each fire.  Example: every Sunday 02:00 in
Berlin for two hours::

    >>> from datetime import UTC, datetime, timedelta
    >>> w = window_of(1, None, None, "0 2 * * 0", timedelta(hours=2), "Europe/Berlin",
    ...               "suppress_alerts")
    >>> covering(w, datetime(2026, 11, 29, 1, 30, tzinfo=UTC)).isoformat()  # 02:30 Berlin
    '2026-11-29T01:00:00+00:00'
    >>> covering(w, datetime(2026, 11, 29, 3, 0, tzinfo=UTC)) is None  # 04:00 Berlin
    True
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from jobs.scheduling.cron import ScheduleError, cron_trigger

log = logging.getLogger(__name__)

SUPPRESS_ALERTS = "suppress_alerts"
SKIP_PROBES = "skip_probes"
MODES = (SUPPRESS_ALERTS, SKIP_PROBES)
FOREVER = datetime.max.replace(tzinfo=UTC)
# Occurrences of one recurring window counted over one span at most (an hourly window over
# 400 days is 9,600; each costs APScheduler ~35 us to compute).
MAX_OCCURRENCES = 20_000
_TICK = timedelta(microseconds=1)
# A period of time, [start, end).
Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class Window:
    id: int
    device_ids: frozenset[int] | None
    start: datetime | None
    trigger: CronTrigger | None
    duration: timedelta
    mode: str
    # When the window was made: a recurring window's occurrences count from then on only
    # (adding one does not rewrite the past); None: since ever.
    created_at: datetime | None = None
    # covering()'s last answer, [from, until, start]: it holds for every t in [from,
    # until).  Every probe asks; a cron's next fire time costs ~0.2 ms (APScheduler).
    memo: list[Any] = field(default_factory=list, compare=False, repr=False)

    def covers_device(self, device_id: int) -> bool:
        return self.device_ids is None or device_id in self.device_ids


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ScheduleError if there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"timezone {name!r} is not an IANA time zone") from None


def window_of(
    window_id: int,
    device_ids: Iterable[int] | None,
    start: datetime | None,
    cron: str | None,
    duration: timedelta,
    timezone: str,
    mode: str,
    created_at: datetime | None = None,
) -> Window:
    """A checked window; ScheduleError says what is wrong with the input."""
    if (start is None) == (cron is None):
        raise ScheduleError("give exactly one of start (one-off) and cron (recurring)")
    if duration <= timedelta(0):
        raise ScheduleError(f"duration must be positive, not {duration.total_seconds():g}s")
    if mode not in MODES:
        raise ScheduleError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    tz = zone(timezone)
    trigger = cron_trigger(cron, tz) if cron is not None else None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=tz)  # a wall-clock start is read in the window's zone
    if start is not None:
        try:
            start.astimezone(UTC) + duration
        except OverflowError:
            raise ScheduleError("start + duration is past the last time there is") from None
    return Window(
        id=window_id,
        device_ids=None if device_ids is None else frozenset(device_ids),
        start=None if start is None else start.astimezone(UTC),
        trigger=trigger,
        duration=duration,
        mode=mode,
        created_at=created_at,
    )


def covering(window: Window, t: datetime) -> datetime | None:
    """The start of the occurrence of ``window`` covering ``t``, or None."""
    memo = window.memo
    if memo and memo[0] <= t < memo[1]:
        return memo[2]  # type: ignore[no-any-return]
    start, until = occurrence(window, t)
    memo[:] = (t, until, start)
    return start


def occurrence(window: Window, t: datetime) -> tuple[datetime | None, datetime]:
    """``(start, until)``: the start of the occurrence covering ``t`` (None: none does),
    and the time before which every later ``t`` gets the same answer."""
    if window.start is not None:
        end = window.start + window.duration
        if t < window.start:
            return None, window.start
        return (window.start, end) if t < end else (None, FOREVER)
    assert window.trigger is not None
    # The first fire strictly after t - duration; it covers t if it is not after t, and
    # stays the answer until it ends (no fire between t - duration and it).
    after = t - window.duration + timedelta(microseconds=1)
    fire: datetime | None = window.trigger.get_next_fire_time(None, after)
    if fire is None:
        return None, FOREVER
    fire = fire.astimezone(UTC)
    if fire > t:
        return None, fire
    return fire, fire + window.duration


def in_maintenance(
    windows: Iterable[Window], device_id: int, t: datetime, mode: str | None = None
) -> Window | None:
    """The first window (of ``mode``, if given) covering ``device_id`` at ``t``."""
    for window in windows:
        if mode is not None and window.mode != mode:
            continue
        if window.covers_device(device_id) and covering(window, t) is not None:
            return window
    return None


def active_ids(windows: Iterable[Window], t: datetime) -> set[int]:
    """Ids of the windows in force at ``t`` (their maintenance.started has happened)."""
    return {w.id for w in windows if covering(w, t) is not None}


def occurrences(
    window: Window, since: datetime, until: datetime, limit: int = MAX_OCCURRENCES
) -> list[Period]:
    """The periods of ``window`` that overlap ``[since, until)``, in order, not clipped to
    it; a recurring window's from its ``created_at`` on (one in force then counts from
    then), at most ``limit`` of them.  A one-off window counts as given, even one entered
    after its time (its start was named)::

        >>> from datetime import UTC, datetime, timedelta
        >>> w = window_of(1, None, None, "0 3 * * *", timedelta(hours=1), "UTC",
        ...               "suppress_alerts", created_at=datetime(2026, 1, 2, 3, 30, tzinfo=UTC))
        >>> [f"{a:%d %H:%M}-{b:%H:%M}" for a, b in occurrences(
        ...     w, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC))]
        ['02 03:30-04:00', '03 03:00-04:00']
    """
    if window.start is not None:
        end = window.start + window.duration
        return [(window.start, end)] if window.start < until and end > since else []
    assert window.trigger is not None
    begins = since if window.created_at is None else max(since, window.created_at)
    found: list[Period] = []
    # The first fire whose occurrence ends after ``begins``, then each next one.
    fire: datetime | None = window.trigger.get_next_fire_time(
        None, begins - window.duration + _TICK
    )
    while fire is not None and fire < until and len(found) < limit:
        fire = fire.astimezone(UTC)
        start = fire if window.created_at is None else max(fire, window.created_at)
        found.append((start, fire + window.duration))
        fire = window.trigger.get_next_fire_time(fire, fire + _TICK)
    return found


class MaintenancePeriods:
    """Each window's occurrences over ``[since, until)``, computed once; :meth:`of` a
    device: the periods of the windows covering it (either mode: with ``skip_probes`` the
    state is not observed at all), for :func:`storage.uptime_maths.state_seconds`."""

    def __init__(self, windows: Iterable[Window], since: datetime, until: datetime) -> None:
        self._windows: list[tuple[Window, list[Period]]] = []
        for window in windows:
            found = occurrences(window, since, until)
            if len(found) >= MAX_OCCURRENCES:
                log.warning(
                    "maintenance window occurrences capped id=%d counted=%d until=%s",
                    window.id, len(found), found[-1][1].isoformat(),
                )  # fmt: skip
            if found:
                self._windows.append((window, found))

    def of(self, device_id: int) -> list[Period]:
        return [p for w, found in self._windows if w.covers_device(device_id) for p in found]
