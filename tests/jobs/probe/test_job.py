"""The probe's job message: the run key of a scheduled probe."""

from __future__ import annotations

from datetime import UTC, datetime

from jobs.probe.job import slot_key


def test_slot_key_is_the_same_for_the_same_slot_in_any_timezone() -> None:
    slot = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    other_tz = slot.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Minsk"))
    assert slot_key(3, slot) == slot_key(3, other_tz) == "probe:3:20260102T030405.600000Z"
    assert slot_key(3, slot) != slot_key(4, slot)
