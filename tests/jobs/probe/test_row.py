"""The one check-row builder (pure): what the probe task and ``POST /devices/{id}/checks``
store, and the ``check.created`` payload made from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.probe.row import check_event_payload, check_row
from jobs.probe.run import ErrorKind, ProbeResult

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SLOT = datetime(2026, 12, 1, 11, 59, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("result", "slot_at", "error_kind", "event_slot"),
    [
        (ProbeResult(status_up=True, latency_ms=12.5, status_code=200), SLOT, None, SLOT),
        (
            ProbeResult(
                status_up=False, latency_ms=None, error_kind=ErrorKind.REFUSED, error="refused"
            ),
            None,
            "refused",
            None,
        ),
        (
            ProbeResult(status_up=False, latency_ms=3.0, status_code=503, error="HTTP 503"),
            None,
            None,
            None,
        ),
    ],
)
def test_a_result_becomes_one_row_and_its_event(
    result: ProbeResult, slot_at: datetime | None, error_kind: str | None, event_slot: object
) -> None:
    row = check_row(
        device_id=7, run_key="k1", source="manual", result=result, checked_at=AT, slot_at=slot_at
    )
    assert row == {
        "device_id": 7,
        "status_up": result.status_up,
        "latency_ms": result.latency_ms,
        "checked_at": AT,
        "run_key": "k1",
        "slot_at": slot_at,
        "status_code": result.status_code,
        "error_kind": error_kind,
        "error": result.error,
        "source": "manual",
        "in_maintenance": False,
    }
    event = check_event_payload(row)
    assert event["checked_at"] == AT.isoformat()
    assert event["slot_at"] == (
        event_slot.isoformat() if isinstance(event_slot, datetime) else None
    )
    assert {k: event[k] for k in ("device_id", "status_up", "latency_ms")} == {
        "device_id": 7,
        "status_up": result.status_up,
        "latency_ms": result.latency_ms,
    }
