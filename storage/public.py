"""What the public status page and the badges may show: public devices only, and of them
only the name, the state, since when, the uptime and open incidents (no address, no error
text) unless the device allows more: with ``public_details`` also its address and its
last check's time, latency, status code and error text (:class:`PublicDetails`; None on
every other device, so nothing downstream can show what was not allowed).  The public
pages take device ids from :func:`public_devices` only, and :func:`uptime_percent` takes
the :class:`PublicDevice` s it returned.

The state is ``device_health.state`` when the device has a health row, else the outcome
of its latest check (``outcome``, or ``status_up`` on rows stored before outcomes), else
``unknown``; an inactive device is ``paused``.  Uptime over a window is the figure of
``GET /devices/{id}/uptime`` (:func:`storage.uptime.uptime_percents`): the share of the
known time spent up or degraded, from the device's state changes, with the time of its
maintenance windows left out (a device without a health row or state changes has none
known: None, whatever results it has).  An open incident is a public device that is down
now, since its state's ``since`` (or its latest check).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.fleet import device_state, newest_check_id
from storage.models import CheckResult, Device, DeviceHealth
from storage.uptime import uptime_percents
from storage.uptime_maths import Period, Window, outcome_of

__all__ = ["PublicDetails", "PublicDevice", "public_device", "public_devices", "uptime_percent"]

_devices = Device.__table__  # type: ignore[attr-defined]
_checks = CheckResult.__table__  # type: ignore[attr-defined]
_health = DeviceHealth.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PublicDetails:
    """What a device with ``public_details`` lets the status page show besides the rest:
    its address and its last check (all None when it has none)."""

    address: str
    checked_at: datetime | None
    latency_ms: float | None
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class PublicDevice:
    id: int
    name: str
    state: str
    since: datetime | None
    # None unless the device allows its details (``public_details``).
    details: PublicDetails | None = None


async def public_devices(conn: AsyncConnection, device_id: int | None = None) -> list[PublicDevice]:
    """Public devices (or the one public device ``device_id``), by name."""
    stmt = (
        select(
            _devices.c.id,
            _devices.c.name,
            _devices.c.is_active,
            _devices.c.public_details,
            _devices.c.address,
            _health.c.state,
            _health.c.since,
            _checks.c.outcome,
            _checks.c.status_up,
            _checks.c.checked_at,
            _checks.c.latency_ms,
            _checks.c.status_code,
            _checks.c.error,
        )
        .select_from(_devices)
        .outerjoin(_health, _health.c.device_id == _devices.c.id)
        .outerjoin(_checks, _checks.c.id == newest_check_id())
        .where(_devices.c.public.is_(True))
        .order_by(_devices.c.name, _devices.c.id)
    )
    if device_id is not None:
        stmt = stmt.where(_devices.c.id == device_id)
    rows = (await conn.execute(stmt)).all()
    found = []
    for row in rows:
        latest = None if row.checked_at is None else outcome_of(dict(row._mapping))
        since = row.since
        if row.state is None and latest is not None:
            since = await _streak_start(conn, row.id, latest != "down")
        found.append(
            PublicDevice(
                id=row.id,
                name=row.name,
                # Without a health row (a database from before them), the latest result.
                state=device_state(row.is_active, row.state or latest),
                since=since,
                details=_details(row) if row.public_details else None,
            )
        )
    return found


def _details(row: Any) -> PublicDetails:
    """``row``: a row of :func:`public_devices`' query."""
    return PublicDetails(
        address=row.address,
        checked_at=row.checked_at,
        latency_ms=row.latency_ms,
        status_code=row.status_code,
        error=row.error,
    )


_NOT_DOWN = case(
    (_checks.c.outcome.is_not(None), _checks.c.outcome != "down"),
    else_=_checks.c.status_up,
)


async def _streak_start(conn: AsyncConnection, device_id: int, up: bool) -> datetime | None:
    """Without a health row: when the device's latest run of down (or not down) results
    began, which is as near to "since" as the results tell."""
    other = (
        select(func.max(_checks.c.checked_at))
        .where(_checks.c.device_id == device_id, _NOT_DOWN.is_not(up))
        .scalar_subquery()
    )
    first = select(func.min(_checks.c.checked_at)).where(
        _checks.c.device_id == device_id,
        (other.is_(None)) | (_checks.c.checked_at > other),
    )
    value: datetime | None = (await conn.execute(first)).scalar_one_or_none()
    return value


async def public_device(conn: AsyncConnection, device_id: int) -> PublicDevice | None:
    found = await public_devices(conn, device_id)
    return found[0] if found else None


async def uptime_percent(
    conn: AsyncConnection,
    devices: Sequence[PublicDevice],
    window: Window,
    now: datetime,
    maintenance: Callable[[int], Sequence[Period]] | None = None,
) -> dict[int, float | None]:
    """Per public device: its uptime over ``window`` ending at ``now``, in percent, the
    periods ``maintenance(device_id)`` left out; None when no time of it is known.  The
    same figure as ``GET /devices/{id}/uptime`` gives for that window, in two queries for
    all the devices."""
    return await uptime_percents(conn, [d.id for d in devices], window, now, maintenance)
