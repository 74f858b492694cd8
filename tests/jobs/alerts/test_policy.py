"""The alert policy (pure): which changes notify, which channels, keys, retries, reminders."""

from __future__ import annotations

import pytest

from jobs.alerts.policy import (
    ChannelRef,
    attempt_msg_id,
    channels_for,
    delivery_key,
    reminder_due,
    retry_delay,
    wants,
)


@pytest.mark.parametrize(
    ("notify_on", "from_state", "to_state", "expected"),
    [
        (None, "up", "down", True),
        (None, "down", "up", True),
        (None, "unknown", "down", True),
        (None, "unknown", "up", False),  # first result: nobody was told of a problem
        (None, "up", "degraded", False),
        (None, "degraded", "up", False),  # degraded was not announced
        (["down", "up", "degraded"], "up", "degraded", True),
        (["down", "up", "degraded"], "degraded", "up", True),
        (["down", "up", "degraded"], "degraded", "down", True),
        (["down"], "down", "up", False),
        (["up"], "down", "up", True),
        ([], "up", "down", False),
        (None, "up", "paused", False),
        (None, "down", "paused", False),
        (None, "paused", "up", False),
        (None, "down", "unknown", False),
    ],
)
def test_which_state_changes_notify(
    notify_on: list[str] | None, from_state: str, to_state: str, expected: bool
) -> None:
    assert wants(notify_on, from_state, to_state) is expected


CHANNELS = [
    ChannelRef(1, is_default=True, is_active=True),
    ChannelRef(2, is_default=False, is_active=True),
    ChannelRef(3, is_default=True, is_active=False),
]


@pytest.mark.parametrize(
    ("device_ids", "expected"),
    [
        (None, [1]),  # every active default channel
        ([2], [2]),
        ([2, 1, 2], [1, 2]),
        ([3], []),  # inactive
        ([9], []),  # deleted since
        ([], []),  # explicitly none
    ],
)
def test_a_device_notifies_its_own_channels_or_the_default_ones(
    device_ids: list[int] | None, expected: list[int]
) -> None:
    assert channels_for(device_ids, CHANNELS) == expected


def test_message_ids_name_the_change_channel_reminder_and_attempt() -> None:
    assert delivery_key(5, 2, 0) == "notify:5:2"
    assert delivery_key(5, 2, 3) == "notify:5:2:3"
    assert attempt_msg_id("notify:5:2", 1, 0) == "notify:5:2"
    assert attempt_msg_id("notify:5:2", 2, 0) == "notify:5:2:a2"
    assert attempt_msg_id("notify:5:2:3", 2, 1) == "notify:5:2:3:a2:h1"


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 30.0), (2, 60.0), (4, 390.0), (5, None), (9, None)]
)
def test_each_failed_attempt_waits_its_delay_until_none_is_left(
    attempt: int, expected: float | None
) -> None:
    assert retry_delay((30.0, 60.0, 120.0, 390.0), attempt) == expected


@pytest.mark.parametrize(
    ("seconds_down", "every", "expected"),
    [(0, 5, 0), (299, 5, 0), (300, 5, 1), (899, 5, 2), (900, 5, 3), (10_000, 0, 0), (-5, 5, 0)],
)
def test_the_latest_reminder_due_counts_whole_intervals(
    seconds_down: float, every: int, expected: int
) -> None:
    assert reminder_due(seconds_down, every) == expected
