"""Schedule maths: deterministic phases, slot arithmetic, run keys, the plan of changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.probe.job import ProbeJobSpec, slot_key
from jobs.scheduling.mirror import event_row_id
from jobs.scheduling.plan import plan_schedule
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


def test_slot_key_is_the_same_for_the_same_slot_in_any_timezone() -> None:
    slot = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    other_tz = slot.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Minsk"))
    assert slot_key(3, slot) == slot_key(3, other_tz) == "probe:3:20260102T030405.600000Z"
    assert slot_key(3, slot) != slot_key(4, slot)


def spec(device_id: int, interval: int = 60, address: str = "http://a/") -> ProbeJobSpec:
    return ProbeJobSpec(device_id=device_id, address=address, interval=interval, timeout=5)


def test_plan_schedule_adds_removes_and_changes() -> None:
    registered = {1: spec(1), 2: spec(2), 3: spec(3)}
    desired = {1: spec(1), 3: spec(3, interval=30), 4: spec(4)}
    plan = plan_schedule(desired, registered)
    assert plan.add == [(4, spec(4))]
    assert plan.remove == [2]
    assert plan.change == [(3, spec(3, interval=30))]
    assert not plan.empty


def test_plan_schedule_of_equal_sets_is_empty() -> None:
    same = {1: spec(1), 2: spec(2, address="http://b/")}
    assert plan_schedule(same, dict(same)).empty


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"type": "device.updated", "payload": {"id": 3}}', 3),
        (b'{"type": "device.created", "payload": {"id": "4"}}', 4),
        (b'{"type": "check.created", "payload": {"id": 3}}', None),
        (b'{"type": "device.deleted", "payload": null}', None),
        (b'{"type": "device.deleted"}', None),
        (b'{"type": "device.deleted", "payload": {"id": "x"}}', None),
        (b"[1, 2]", None),
        (b"not json", None),
        (b"\xff", None),
    ],
)
def test_only_usable_row_events_name_a_row(data: bytes, expected: int | None) -> None:
    types = frozenset({"device.created", "device.updated", "device.deleted"})
    assert event_row_id(data, types) == expected


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
