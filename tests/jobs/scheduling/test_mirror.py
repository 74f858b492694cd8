"""The table mirror's event filter (pure): only a usable row event names a row."""

from __future__ import annotations

import pytest

from jobs.scheduling.mirror import event_row_id


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
