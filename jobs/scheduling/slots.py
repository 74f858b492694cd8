"""Slot maths, pure: the epoch, per-row phases, the slot a time belongs to.

A row (a device) run every ``interval`` seconds has slots at ``anchor + k * interval`` where
``anchor = EPOCH + phase(device_id, interval)``.  The phase is deterministic (spreads
rows over the interval without APScheduler's drifting ``jitter=``), so every scheduler
process computes the same slot times, and a slot time names one run everywhere::

    >>> anchor = slot_anchor(7, 60)
    >>> slot_at(anchor + timedelta(seconds=125), anchor, 60) == anchor + timedelta(seconds=120)
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def phase_seconds(key: str, interval: int) -> float:
    """A stable offset in ``[0, interval)``, with millisecond resolution."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    millis = int.from_bytes(digest, "big") % (interval * 1000)
    return millis / 1000


def slot_anchor(device_id: int, interval: int) -> datetime:
    return EPOCH + timedelta(seconds=phase_seconds(f"device:{device_id}", interval))


def slot_at(now: datetime, anchor: datetime, interval: int) -> datetime:
    """The latest slot at or before ``now`` (the slot a run fired at ``now`` belongs to).

    A few milliseconds of clock skew before the slot still count as that slot, so a
    run fired marginally early never names the previous one.
    """
    elapsed = (now - anchor).total_seconds() + 0.05
    k = int(elapsed // interval)
    return anchor + timedelta(seconds=k * interval)


class Scheduled(Protocol):
    """Anything scheduled every ``interval`` seconds (a probe spec, ...)."""

    @property
    def interval(self) -> int: ...


def recent_slots(
    specs: Mapping[int, Scheduled], now: datetime, window: float
) -> dict[int, datetime]:
    """Each device's latest slot, if it fell within the last ``window`` seconds (pure).

    What a scheduler that just took the lead may have been left: slots that came while
    no scheduler held it.  Only the latest per device: one catch-up run, not a burst."""
    recent = {}
    for device_id, spec in specs.items():
        slot = slot_at(now, slot_anchor(device_id, spec.interval), spec.interval)
        if (now - slot).total_seconds() <= window:
            recent[device_id] = slot
    return recent
