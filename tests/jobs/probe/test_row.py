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
        "outcome": "up" if result.status_up else "down",  # not judged: from status_up
        "verdicts": None,
        "degraded_verdicts": None,
        "certificate_expires_at": None,
        "certificate_subject": None,
        "in_maintenance": False,
    }
    event = check_event_payload(row)
    # the REST API's format (pydantic's): UTC with Z, never +00:00
    assert event["checked_at"] == "2026-12-01T12:00:00Z"
    assert event["slot_at"] == ("2026-12-01T11:59:30Z" if event_slot is not None else None)
    assert event["error_kind"] == error_kind
    assert {k: event[k] for k in ("device_id", "status_up", "latency_ms")} == {
        "device_id": 7,
        "status_up": result.status_up,
        "latency_ms": result.latency_ms,
    }
    assert (event["outcome"], event["error_kind"]) == (row["outcome"], error_kind)


def test_a_judged_result_keeps_its_outcome_verdicts_and_certificate() -> None:
    verdicts = [{"condition": "[RESPONSE_TIME] > 0", "success": True, "actual": "3"}]
    result = ProbeResult(
        status_up=True,
        latency_ms=3.0,
        status_code=200,
        outcome="degraded",
        verdicts=[{"condition": "[STATUS] < 500", "success": True, "actual": "200"}],
        degraded_verdicts=verdicts,
        certificate_expires_at=SLOT,
        certificate_subject="CN=mail.local",
    )
    row = check_row(device_id=7, run_key="k2", source="schedule", result=result, checked_at=AT)
    assert (row["outcome"], row["status_up"]) == ("degraded", True)
    assert row["degraded_verdicts"] == verdicts
    assert row["verdicts"] == result.verdicts
    assert row["certificate_expires_at"] == SLOT
    assert row["certificate_subject"] == "CN=mail.local"
    long = check_row(
        device_id=7,
        run_key="k3",
        source="schedule",
        result=ProbeResult(status_up=True, latency_ms=1.0, certificate_subject="CN=" + "x" * 600),
        checked_at=AT,
    )
    assert long["certificate_subject"] == ("CN=" + "x" * 600)[:500]  # the column's length
    assert check_event_payload(row)["outcome"] == "degraded"
