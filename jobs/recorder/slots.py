"""The slot a scheduled recorder command belongs to, pure: computed from the trigger.

Every scheduler process fires a schedule at the same instants (the trigger's fire
times), so "the latest fire time at or before now" names the run everywhere; it keys the
stored result and the JetStream ``Nats-Msg-Id``, and two schedulers send one command::

    >>> from jobs.recorder.triggers import interval_trigger
    >>> t = datetime(2026, 11, 23, 8, 0, 59, 900_000, tzinfo=UTC)
    >>> slot_for(interval_trigger(60), t).isoformat()
    '2026-11-23T08:00:00+00:00'
    >>> slot_key(7, slot_for(interval_trigger(60), t))
    'recorder:7:20261123T080000.000000Z'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

# A run fired a hair before its slot (timer resolution) still belongs to that slot.
SKEW = timedelta(milliseconds=50)
# How far back to look for the previous fire time (past it: the schedule never fired).
MAX_LOOKBACK = timedelta(days=1600)  # leap-day schedules fire every 4 years


def slot_for(trigger: BaseTrigger, now: datetime, skew: timedelta = SKEW) -> datetime | None:
    """The latest fire time of ``trigger`` at or before ``now + skew``.

    Searches back in doubling windows (1 s, 2 s, 4 s, ...), then walks forward to the
    last fire time inside the window: a few trigger computations whatever the schedule.
    """
    end = now + skew
    window = timedelta(seconds=1)
    while window <= MAX_LOOKBACK:
        fire = trigger.get_next_fire_time(None, end - window)
        if fire is not None and fire <= end:
            while True:
                after = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
                if after is None or after > end:
                    return fire.astimezone(UTC)  # type: ignore[no-any-return]
                fire = after
        window *= 2
    return None


def slot_key(schedule_id: int, slot: datetime) -> str:
    """The run key of a scheduled command: one per (schedule, slot); also its Nats-Msg-Id."""
    return f"recorder:{schedule_id}:{slot.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
