"""The fleet as ``GET /metrics`` reads it: one query, one row per device.

Each device with its health state (``device_health``: no row yet is ``unknown``, an
inactive device is ``paused`` whatever its row says), the latency of its latest result
and, for addresses that carry a certificate (``https://``, ``tls://``), the expiry of
the newest result that recorded one.  The per-device look-ups walk the
``(device_id, checked_at)`` index backwards from the newest row: the cost grows with
the number of devices, not of results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, Table, case, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import CheckResult, Device, DeviceHealth
from storage.types import UTCDateTime

UNKNOWN = "unknown"
PAUSED = "paused"
STATES = ("up", "degraded", "down", UNKNOWN, PAUSED)

_devices: Table = Device.__table__  # type: ignore[attr-defined]
_checks: Table = CheckResult.__table__  # type: ignore[attr-defined]
_health: Table = DeviceHealth.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FleetDevice:
    id: int
    name: str
    state: str
    latency_ms: float | None
    certificate_expires_at: datetime | None


def device_state(is_active: bool, health_state: str | None) -> str:
    """The state a device is shown in (pure).

    >>> device_state(True, None), device_state(False, "up"), device_state(True, "down")
    ('unknown', 'paused', 'down')
    """
    if not is_active:
        return PAUSED
    return health_state or UNKNOWN


def newest_check_id() -> ScalarSelect[int]:
    """The id of the newest result (by checked_at, then id) of the device of the
    enclosing query (correlated to ``devices``): one walk down the index per device."""
    newest = _checks.alias("newest")
    return (
        select(newest.c.id)
        .where(newest.c.device_id == _devices.c.id)
        .order_by(newest.c.checked_at.desc(), newest.c.id.desc())
        .limit(1)
        .correlate(_devices)
        .scalar_subquery()
    )


def _fleet_query() -> Any:
    latest = _checks.alias("latest")
    cert = _checks.alias("cert")
    expiry = (
        select(cert.c.certificate_expires_at)
        .where(cert.c.device_id == _devices.c.id, cert.c.certificate_expires_at.is_not(None))
        .order_by(cert.c.checked_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    # Only where a certificate can be: a plain http:// device would scan all its rows.
    carries_cert = or_(_devices.c.address.like("https:%"), _devices.c.address.like("tls:%"))
    return (
        select(
            _devices.c.id,
            _devices.c.name,
            _devices.c.is_active,
            _health.c.state,
            latest.c.latency_ms,
            # CASE loses the column's type: coerced back, SQLite's text is read as UTC.
            type_coerce(case((carries_cert, expiry), else_=None), UTCDateTime()).label(
                "certificate_expires_at"
            ),
        )
        .select_from(
            _devices.outerjoin(_health, _health.c.device_id == _devices.c.id).outerjoin(
                latest, latest.c.id == newest_check_id()
            )
        )
        .order_by(_devices.c.id)
    )


async def fleet(engine: AsyncEngine) -> list[FleetDevice]:
    async with engine.connect() as conn:
        rows = (await conn.execute(_fleet_query())).all()
    return [
        FleetDevice(
            id=row.id,
            name=row.name,
            state=device_state(bool(row.is_active), row.state),
            latency_ms=row.latency_ms,
            certificate_expires_at=row.certificate_expires_at,
        )
        for row in rows
    ]
