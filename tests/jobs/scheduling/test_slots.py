"""Slot maths (pure): deterministic phases, slot arithmetic, each device's recent slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.probe.job import ProbeJobSpec
from jobs.scheduling.slots import EPOCH, phase_seconds, recent_slots, slot_anchor, slot_at


def test_phase_is_stable_and_inside_the_interval() -> None:
    for device_id in range(200):
        p = phase_seconds(f"device:{device_id}", 60)
        assert 0 <= p < 60
        assert p == phase_seconds(f"device:{device_id}", 60)


def test_phases_spread_devices_over_the_interval() -> None:
    phases = [phase_seconds(f"device:{i}", 10) for i in range(1000)]
    buckets = [sum(1 for p in phases if b <= p < b + 1) for b in range(10)]
    assert min(buckets) > 50  # roughly 100 per second, none empty


@pytest.mark.parametrize(
    ("offset", "expected_k"),
    [
        (0.0, 0),
        (0.001, 0),
        (59.9, 0),
        (60.0, 1),
        (125.0, 2),
        (-0.02, 0),  # a fire a few ms early still names its own slot
        (119.97, 2),
    ],
)
def test_slot_at_names_the_latest_slot_at_or_before_now(offset: float, expected_k: int) -> None:
    anchor = slot_anchor(42, 60) + timedelta(days=1000)
    now = anchor + timedelta(seconds=offset)
    assert slot_at(now, anchor, 60) == anchor + timedelta(seconds=60 * expected_k)


def test_slots_are_anchored_on_the_epoch_plus_the_phase() -> None:
    anchor = slot_anchor(7, 30)
    assert EPOCH <= anchor < EPOCH + timedelta(seconds=30)
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    slot = slot_at(now, anchor, 30)
    assert ((slot - anchor).total_seconds()) % 30 == pytest.approx(0, abs=1e-6)
    assert now - timedelta(seconds=30) < slot <= now + timedelta(seconds=0.05)


def test_recent_slots_are_each_devices_latest_within_the_window() -> None:
    specs = {
        d: ProbeJobSpec(device_id=d, address="http://x/", interval=60, timeout=5) for d in (1, 2, 3)
    }
    now = slot_anchor(1, 60) + timedelta(days=3, seconds=5)  # device 1's slot was 5 s ago
    recent = recent_slots(specs, now, window=14)
    assert recent[1] == now - timedelta(seconds=5)
    for device_id, slot in recent.items():
        assert slot == slot_at(now, slot_anchor(device_id, 60), 60)
        assert timedelta(0) <= now - slot <= timedelta(seconds=14)
    # A device whose latest slot is older than the window owes nothing.
    older = [d for d in specs if (now - slot_at(now, slot_anchor(d, 60), 60)).total_seconds() > 14]
    assert older and all(d not in recent for d in older)  # the phases leave some out
    assert recent_slots(specs, now, window=0) == {}
