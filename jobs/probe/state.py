"""A device's health state, pure: results in, the state and each change of it out.

States: ``unknown`` (no result yet, or none for two intervals), ``up``, ``degraded``,
``down``, ``paused`` (the device is inactive). The rules, as an operator coming from
Gatus or Uptime Kuma expects them:

- ``down`` after ``failure_threshold`` consecutive failing (down-outcome) results, ``up``
  or ``degraded`` after ``success_threshold`` consecutive passing ones (defaults 3 and 1).
- A degraded result is a passing one. Between the passing states the latest passing
  result decides at once, with no threshold: degraded is not an outage.
- From ``unknown`` the same thresholds hold: a new device whose first check fails stays
  unknown until the third failure (Gatus does not alert on a new endpoint's first
  failure), and its first pass makes it up at once (success_threshold 1).
- :func:`stale` makes a device that produced no result for two intervals ``unknown``
  (a slot that produced nothing is not "still up"); :func:`pause` / :func:`resume`
  follow ``is_active``. Results that arrive while paused do not count; after a reset
  (stale, pause, resume) counting starts again.
- The state is what the results give **in slot order**, whatever order they arrive in.
  :class:`Health` keeps the last :data:`WINDOW` results; a late one is put in its place
  and the window folded again from the tally before it. If that changes the state, the
  change is dated at the newest result (history already announced is not rewritten).
  A result older than the window, than a pause or resume, or than a gap that made the
  device unknown no longer counts. The same ``run_key`` twice is one result.

The integration keeps one :class:`Health` per device in a row and decides each change
by compare-and-swap on ``revision`` (only the process whose update landed stores the
``state_changes`` row and publishes ``device.state_changed``)::

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> health = Health.new(t0)
    >>> health, change = step(health, Observation(Outcome.UP, t0, "probe:1:a"), Thresholds())
    >>> print(change.from_state, change.to_state, health.state, health.revision)
    unknown up up 1
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jobs.probe.conditions import Outcome
from storage.types import isoformat_z

# How many of the latest results a late one can still be sorted in among.
WINDOW = 16


class State(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    PAUSED = "paused"


_PASSING = {Outcome.UP: State.UP, Outcome.DEGRADED: State.DEGRADED}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A device's ``failure_threshold`` and ``success_threshold`` (each at least 1)."""

    failure_threshold: int = 3
    success_threshold: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "success_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Observation:
    """One stored result as the state machine sees it; ``at`` is its slot (scheduled
    runs) or its ``checked_at`` (manual ones); ``cause`` the failing verdicts or error."""

    outcome: Outcome
    at: datetime
    run_key: str
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """A result kept in the window: enough to fold it again."""

    at: datetime
    run_key: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Tally:
    """What folding results gives: the state, since when, and the current streaks."""

    state: State
    since: datetime
    consecutive_failures: int = 0
    consecutive_successes: int = 0


@dataclass(frozen=True, slots=True)
class Health:
    """A device's stored health (one row): the current tally, the window of recent
    results with the tally before it (``base``), and ``revision`` for compare-and-swap.
    ``floor``: results at or before it no longer count (folded out, or before a reset).
    It is stored as JSON text by :mod:`jobs.probe.health` (msgspec, ``encode_health``)."""

    state: State
    since: datetime
    consecutive_failures: int
    consecutive_successes: int
    base: Tally
    recent: tuple[Mark, ...] = ()
    last_slot_at: datetime | None = None
    floor: datetime | None = None
    revision: int = 0

    @classmethod
    def new(cls, at: datetime, state: State = State.UNKNOWN) -> Health:
        """A device's health before any result (``at``: when it was created)."""
        return cls(state, at, 0, 0, Tally(state, at))

    @property
    def tally(self) -> Tally:
        return Tally(self.state, self.since, self.consecutive_failures, self.consecutive_successes)

    @property
    def last_run_key(self) -> str | None:
        return self.recent[-1].run_key if self.recent else None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state: the future ``state_changes`` row and ``device.state_changed``.
    ``run_key`` is the result that caused it (None for stale, pause and resume)."""

    from_state: State
    to_state: State
    at: datetime
    cause: str | None
    run_key: str | None

    def payload(self, device_id: int) -> dict[str, Any]:
        """The ``device.state_changed`` event's payload."""
        return {
            "device_id": device_id,
            "from": str(self.from_state),
            "to": str(self.to_state),
            "since": isoformat_z(self.at),
            "cause": self.cause,
        }


def _apply(tally: Tally, mark: Mark, thresholds: Thresholds) -> Tally:
    """One more result, in slot order."""
    if mark.outcome is Outcome.DOWN:
        failures, successes = tally.consecutive_failures + 1, 0
        reached = failures >= thresholds.failure_threshold
        state = State.DOWN if reached else tally.state
    else:
        failures, successes = 0, tally.consecutive_successes + 1
        passing = tally.state in (State.UP, State.DEGRADED)
        reached = passing or successes >= thresholds.success_threshold
        state = _PASSING[mark.outcome] if reached else tally.state
    since = tally.since if state == tally.state else mark.at
    return Tally(state, since, failures, successes)


def _fold(tally: Tally, marks: Iterable[Mark], thresholds: Thresholds) -> Tally:
    for mark in marks:
        tally = _apply(tally, mark, thresholds)
    return tally


def step(
    health: Health, result: Observation, thresholds: Thresholds
) -> tuple[Health, Transition | None]:
    """``health`` after one more stored result, and the change it made if any.

    The same ``health`` comes back (and nothing is to be written) for a duplicate, a
    result while paused, or one too late to count."""
    if health.state is State.PAUSED or any(m.run_key == result.run_key for m in health.recent):
        return health, None
    if health.floor is not None and result.at <= health.floor:
        return health, None
    mark = Mark(result.at, result.run_key, result.outcome)
    if health.last_slot_at is None or result.at >= health.last_slot_at:
        tally, recent = _apply(health.tally, mark, thresholds), (*health.recent, mark)
        at = result.at
    else:  # late: sort it in and fold the window again
        place = bisect.bisect_right([m.at for m in health.recent], result.at)
        recent = (*health.recent[:place], mark, *health.recent[place:])
        derived = _fold(health.base, recent, thresholds)
        at = health.last_slot_at
        tally = replace(derived, since=health.since if derived.state == health.state else at)
    base, floor = health.base, health.floor
    while len(recent) > WINDOW:
        base, floor, recent = _apply(base, recent[0], thresholds), recent[0].at, recent[1:]
    new = Health(
        tally.state,
        tally.since,
        tally.consecutive_failures,
        tally.consecutive_successes,
        base,
        recent,
        at,  # the newest slot applied: a late result leaves it where it was
        floor,
        health.revision + 1,
    )
    if tally.state == health.state:
        return new, None
    return new, Transition(health.state, tally.state, at, result.cause, result.run_key)


def replay(
    health: Health, results: Iterable[Observation], thresholds: Thresholds
) -> tuple[Health, list[Transition]]:
    """Fold stored results in slot order from ``health`` (e.g. ``Health.new(created_at)``
    to rebuild a device's health from its results); every change on the way."""
    changes = []
    for result in sorted(results, key=lambda r: r.at):
        health, change = step(health, result, thresholds)
        if change is not None:
            changes.append(change)
    return health, changes


def _reset(
    health: Health, state: State, at: datetime, floor: datetime | None, cause: str
) -> tuple[Health, Transition | None]:
    since = health.since if state == health.state else at
    new = Health(
        state, since, 0, 0, Tally(state, since), (), health.last_slot_at, floor, health.revision + 1
    )
    change = None if state == health.state else Transition(health.state, state, at, cause, None)
    return new, change


def quiet_since(health: Health) -> datetime | None:
    """From when :func:`stale` counts a device's silence: its last result's slot, or when
    its state began if that is later (a reset, a resume).  None when no silence can change
    it: ``paused``, or ``unknown`` with nothing heard since (created, reset, resumed).
    Stored beside the health (``device_health.stale_from_s``) so the leader's sweep
    selects only devices it may change."""
    if health.state is State.PAUSED:
        return None
    if health.state is State.UNKNOWN and not health.recent and health.base == health.tally:
        return None
    return max(health.since, health.last_slot_at or health.since)


def stale(
    health: Health, now: datetime, interval: int, grace: float = 0.0
) -> tuple[Health, Transition | None]:
    """``unknown`` once no result came for two intervals (plus ``grace``, e.g. the probe's
    timeout, for the second slot's result to be stored), dated at that deadline.

    Streaks end there too: results before the gap are not consecutive with those after."""
    last = quiet_since(health)
    if last is None:
        return health, None
    deadline = last + timedelta(seconds=2 * interval + grace)
    if now <= deadline:
        return health, None
    cause = f"no result for two intervals ({2 * interval} s) after {last.isoformat()}"
    return _reset(health, State.UNKNOWN, deadline, health.last_slot_at, cause)


def pause(health: Health, at: datetime) -> tuple[Health, Transition | None]:
    """The device became inactive (``is_active`` false)."""
    if health.state is State.PAUSED:
        return health, None
    return _reset(health, State.PAUSED, at, at, "device deactivated")


def resume(health: Health, at: datetime) -> tuple[Health, Transition | None]:
    """The device became active again: ``unknown`` until its results say otherwise."""
    if health.state is not State.PAUSED:
        return health, None
    return _reset(health, State.UNKNOWN, at, at, "device activated")


def retrying(health: Health) -> bool:
    """Whether a device with a retry interval is probed at it now: it fails but is not
    down yet, or passes but is not up yet."""
    failing = health.state not in (State.DOWN, State.PAUSED) and health.consecutive_failures > 0
    recovering = health.state is State.DOWN and health.consecutive_successes > 0
    return failing or recovering


def next_interval(health: Health, interval: int, retry_interval: int | None = None) -> int:
    """Seconds to the next probe: ``retry_interval`` (default ``interval``) while
    :func:`retrying`."""
    if retry_interval is not None and retrying(health):
        return retry_interval
    return interval
