"""A probe's result as a ``check_results`` row and as its ``check.created`` event, pure.

The one builder of a check row: the probe task (:mod:`jobs.probe.task`) and a result
recorded by hand (``POST /devices/{id}/checks``) both go through :func:`check_row`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from jobs.probe.job import ProbeSource
from jobs.probe.run import ProbeResult
from storage.types import isoformat_z
from storage.uptime_maths import outcome_of

# A stored result's ``source``: a queued probe's, or ``entered`` by hand (``POST
# /devices/{id}/checks``, never on the queue; rows stored before it existed say
# ``manual``).
CheckSource = Literal[ProbeSource, "entered"]

# The ``certificate_subject`` column's length: a longer subject is cut.
SUBJECT_MAX = 500


def check_row(
    *,
    device_id: int,
    run_key: str,
    source: CheckSource,
    result: ProbeResult,
    checked_at: datetime,
    slot_at: datetime | None = None,
    in_maintenance: bool = False,
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "status_up": result.status_up,
        "latency_ms": result.latency_ms,
        "checked_at": checked_at,
        "run_key": run_key,
        "slot_at": slot_at,
        "status_code": result.status_code,
        "error_kind": str(result.error_kind) if result.error_kind else None,
        "error": result.error,
        "source": source,
        # A result not judged by conditions (recorded by hand): up or down by status_up.
        "outcome": result.outcome or ("up" if result.status_up else "down"),
        "verdicts": result.verdicts,
        "degraded_verdicts": result.degraded_verdicts,
        "certificate_expires_at": result.certificate_expires_at,
        "certificate_subject": (
            None if result.certificate_subject is None else result.certificate_subject[:SUBJECT_MAX]
        ),
        "in_maintenance": in_maintenance,
    }


def check_event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """``check.created``: the seed's ``{device_id, status_up, latency_ms}`` and more."""
    return {
        "device_id": row["device_id"],
        "status_up": row["status_up"],
        "latency_ms": row["latency_ms"],
        "status_code": row["status_code"],
        "outcome": outcome_of(row),
        "error_kind": row["error_kind"],
        "error": row["error"],
        "checked_at": isoformat_z(row["checked_at"]),
        "slot_at": isoformat_z(row["slot_at"]) if row["slot_at"] else None,
        "run_key": row["run_key"],
        "source": row["source"],
    }
