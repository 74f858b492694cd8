"""What the public status page and the badges may show: public devices only, and of them
only the name, the state, since when, the uptime and open incidents (no address, no error
text).

The state is ``device_health.state`` when the device has a health row, else the outcome
of its latest check (``outcome``, or ``status_up`` on rows stored before outcomes), else
``unknown``; an inactive device is ``paused``.  Uptime over a window is read from the
hourly ``check_rollups`` when the device has any, else from the raw results; results
stored in a maintenance window count for neither side.  An open incident is a public
device that is down now, since its state's ``since`` (or its latest check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.fleet import device_state, newest_check_id
from storage.models import CheckResult, CheckRollup, Device, DeviceHealth
from storage.uptime_maths import outcome_of

__all__ = ["PublicDevice", "public_device", "public_devices", "uptime_percent"]

_devices = Device.__table__  # type: ignore[attr-defined]
_checks = CheckResult.__table__  # type: ignore[attr-defined]
_health = DeviceHealth.__table__  # type: ignore[attr-defined]
_rollups = CheckRollup.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PublicDevice:
    id: int
    name: str
    state: str
    since: datetime | None


async def public_devices(conn: AsyncConnection, device_id: int | None = None) -> list[PublicDevice]:
    """Public devices (or the one public device ``device_id``), by name."""
    stmt = (
        select(
            _devices.c.id,
            _devices.c.name,
            _devices.c.is_active,
            _health.c.state,
            _health.c.since,
            _checks.c.outcome,
            _checks.c.status_up,
            _checks.c.checked_at,
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
            )
        )
    return found


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
    conn: AsyncConnection, device_ids: Sequence[int], window: timedelta, now: datetime
) -> dict[int, float | None]:
    """Per device: the share of results in ``(now - window, now]`` that were not down, in
    percent; None for a device with no result in the window."""
    if not device_ids:
        return {}
    start = now - window
    counted: dict[int, tuple[int, int]] = {}
    rolled = (
        select(
            _rollups.c.device_id,
            func.sum(_rollups.c.checks - _rollups.c.in_maintenance),
            func.sum(_rollups.c.up + _rollups.c.degraded),
        )
        .where(
            _rollups.c.device_id.in_(device_ids),
            _rollups.c.period == "h",
            _rollups.c.start >= start - timedelta(hours=1),
            _rollups.c.start <= now,
        )
        .group_by(_rollups.c.device_id)
    )
    for dev, checks, up in (await conn.execute(rolled)).all():
        counted[dev] = (int(checks or 0), int(up or 0))
    has_rollups = select(_rollups.c.device_id).where(_rollups.c.device_id.in_(device_ids))
    with_rollups = {r[0] for r in (await conn.execute(has_rollups.distinct())).all()}
    raw_ids = [d for d in device_ids if d not in with_rollups]
    if raw_ids:
        not_down = _NOT_DOWN
        raw = (
            select(
                _checks.c.device_id,
                func.count(),
                func.sum(case((not_down, 1), else_=0)),
            )
            .where(
                and_(
                    _checks.c.device_id.in_(raw_ids),
                    _checks.c.checked_at > start,
                    _checks.c.checked_at <= now,
                    _checks.c.in_maintenance.is_(False),
                )
            )
            .group_by(_checks.c.device_id)
        )
        for dev, checks, up in (await conn.execute(raw)).all():
            counted[dev] = (int(checks or 0), int(up or 0))
    result: dict[int, float | None] = {}
    for dev in device_ids:
        checks, up = counted.get(dev, (0, 0))
        result[dev] = None if checks <= 0 else round(100.0 * up / checks, 3)
    return result
