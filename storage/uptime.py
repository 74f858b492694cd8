"""Uptime of one device over trailing windows, and the status of every device, read from
``state_changes`` (time in each state), ``check_rollups`` (counts and latency) and
``device_health``, never from the raw results: both stay right after retention pruned
them, and answer in a few small queries (the maths is :mod:`storage.uptime_maths`).
The periods of maintenance windows, left out of uptime, are handed in by the caller
(the windows are scheduling's: :class:`jobs.scheduling.windows.MaintenancePeriods`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.fleet import newest_check_id
from storage.models import CheckResult, Device, DeviceHealth, StateChange
from storage.rollups import histogram, summed_rollups_per_window
from storage.uptime_maths import (
    Change,
    Period,
    Window,
    histogram_percentile,
    outcome_of,
    rollup_ranges,
    shares,
    state_seconds,
)

DEVICES: Table = Device.__table__  # type: ignore[attr-defined]
CHECKS: Table = CheckResult.__table__  # type: ignore[attr-defined]
HEALTH: Table = DeviceHealth.__table__  # type: ignore[attr-defined]
CHANGES: Table = StateChange.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class WindowUptime:
    window: str
    uptime_percent: float | None
    degraded_percent: float | None
    down_percent: float | None
    unknown_seconds: float
    paused_seconds: float
    maintenance_seconds: float
    checks: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_max_ms: float | None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: int
    name: str
    state: str
    since: datetime | None
    last_check: dict[str, Any] | None
    uptime_24h: float | None
    uptime_30d: float | None = None  # over ``month``, when device_statuses is given one


def _fallback(state: str | None, since: datetime | None) -> tuple[str, datetime] | None:
    """What holds when a device has no state change: its health row, else nothing."""
    if state is not None and since is not None:
        return (state, since)
    return None


def _changes_statement() -> Any:
    """Per device among ``:ids``: the last change at or before ``:start`` and every
    change in ``(:start, :end]``, by device and time, in one query."""
    ids: Any = bindparam("ids", expanding=True)
    start = bindparam("start", type_=CHANGES.c.at.type)
    end = bindparam("end", type_=CHANGES.c.at.type)
    inner = CHANGES.alias("before_start")
    last_before = (
        select(inner.c.id)
        .where(inner.c.device_id == DEVICES.c.id, inner.c.at <= start)
        .order_by(inner.c.at.desc(), inner.c.revision.desc())
        .limit(1)
        .correlate(DEVICES)
        .scalar_subquery()
    )
    cols = (
        CHANGES.c.device_id,
        CHANGES.c.at,
        CHANGES.c.revision,
        CHANGES.c.from_state,
        CHANGES.c.to_state,
    )
    # The change before the window sorts first: its ``at`` is earlier.
    both = union_all(
        select(*cols).where(CHANGES.c.id.in_(select(last_before).where(DEVICES.c.id.in_(ids)))),
        select(*cols).where(
            CHANGES.c.device_id.in_(ids), CHANGES.c.at > start, CHANGES.c.at <= end
        ),
    ).subquery()
    return select(both).order_by(both.c.device_id, both.c.at, both.c.revision)


# Built once: building it cost more than running it.
_CHANGES_STATEMENT = _changes_statement()


async def _changes(
    conn: AsyncConnection, device_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[Change]]:
    """Per device: the last change at or before ``start`` and every change in
    ``(start, end]``, in order."""
    out: dict[int, list[Change]] = {d: [] for d in device_ids}
    if not device_ids:
        return out
    params = {"ids": list(device_ids), "start": start, "end": end}
    for row in (await conn.execute(_CHANGES_STATEMENT, params)).all():
        out[int(row.device_id)].append(Change(row.at, row.from_state, row.to_state))
    return out


async def device_uptime(
    engine: AsyncEngine,
    device_id: int,
    windows: Sequence[Window],
    now: datetime,
    maintenance: Sequence[Period] = (),
) -> list[WindowUptime] | None:
    """The device's uptime over each trailing window ending at ``now``, the time in
    ``maintenance`` (its maintenance windows' periods) left out; None when no device has
    this id."""
    async with engine.connect() as conn:
        device = (
            await conn.execute(
                select(HEALTH.c.state, HEALTH.c.since)
                .select_from(DEVICES.outerjoin(HEALTH, HEALTH.c.device_id == DEVICES.c.id))
                .where(DEVICES.c.id == device_id)
            )
        ).first()
        if device is None:
            return None
        fallback = _fallback(device.state, device.since)
        longest = max(w.length for w in windows)
        changes = (await _changes(conn, [device_id], now - longest, now))[device_id]
        starts = [now - w.length for w in windows]
        summed = await summed_rollups_per_window(
            conn, device_id, [rollup_ranges(start, now) for start in starts]
        )
    out = []
    for window, start, sums in zip(windows, starts, summed, strict=True):
        share = shares(state_seconds(start, now, changes, fallback, maintenance))
        counts = histogram(sums)
        top = float(sums.get("latency_max_ms") or 0.0)
        has_latency = int(sums.get("latency_count") or 0) > 0
        out.append(
            WindowUptime(
                window=window.label,
                uptime_percent=share.uptime_percent,
                degraded_percent=share.degraded_percent,
                down_percent=share.down_percent,
                unknown_seconds=share.unknown_seconds,
                paused_seconds=share.paused_seconds,
                maintenance_seconds=share.maintenance_seconds,
                checks=int(sums.get("checks") or 0),
                latency_p50_ms=histogram_percentile(counts, 50, top),
                latency_p95_ms=histogram_percentile(counts, 95, top),
                latency_max_ms=round(top, 3) if has_latency else None,
            )
        )
    return out


async def _latest_checks(conn: AsyncConnection, device_ids: Sequence[int]) -> dict[int, Any]:
    """Each device's newest result (by checked_at), one indexed lookup per device."""
    newest = newest_check_id()
    stmt = select(
        CHECKS.c.device_id,
        CHECKS.c.checked_at,
        CHECKS.c.outcome,
        CHECKS.c.status_up,
        CHECKS.c.latency_ms,
    ).where(CHECKS.c.id.in_(select(newest).where(DEVICES.c.id.in_(device_ids))))
    return {int(row.device_id): row for row in (await conn.execute(stmt)).all()}


async def device_statuses(
    engine: AsyncEngine,
    now: datetime,
    *,
    limit: int,
    offset: int,
    day: Window,
    month: Window | None = None,
    maintenance: Callable[[int], Sequence[Period]] | None = None,
) -> list[DeviceStatus]:
    """Devices ordered by id (``limit``/``offset``): state, since, the newest result and
    the uptime over ``day`` (and over ``month``, if given; ``maintenance(device_id)``: the
    periods left out of both), in four queries whatever the page size."""
    async with engine.connect() as conn:
        devices = (
            await conn.execute(
                select(
                    DEVICES.c.id,
                    DEVICES.c.name,
                    DEVICES.c.is_active,
                    HEALTH.c.state,
                    HEALTH.c.since,
                )
                .select_from(DEVICES.outerjoin(HEALTH, HEALTH.c.device_id == DEVICES.c.id))
                .order_by(DEVICES.c.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        ids = [int(d.id) for d in devices]
        if not ids:
            return []
        latest = await _latest_checks(conn, ids)
        start = now - day.length
        month_start = None if month is None else now - month.length
        changes = await _changes(conn, ids, min(start, month_start or start), now)
    out = []
    for d in devices:
        fallback = _fallback(d.state, d.since)
        left_out = () if maintenance is None else maintenance(d.id)
        seconds = state_seconds(start, now, changes[d.id], fallback, left_out)
        uptime = shares(seconds).uptime_percent
        uptime_30d = None
        if month_start is not None:
            month_seconds = state_seconds(month_start, now, changes[d.id], fallback, left_out)
            uptime_30d = shares(month_seconds).uptime_percent
        check = latest.get(d.id)
        out.append(
            DeviceStatus(
                device_id=d.id,
                name=d.name,
                state=d.state or ("unknown" if d.is_active else "paused"),
                since=d.since,
                last_check=None
                if check is None
                else {
                    "checked_at": check.checked_at,
                    "outcome": outcome_of(check._mapping),
                    "status_up": check.status_up,
                    "latency_ms": check.latency_ms,
                },
                uptime_24h=uptime,
                uptime_30d=uptime_30d,
            )
        )
    return out


async def uptime_percents(
    conn: AsyncConnection,
    device_ids: Sequence[int],
    window: Window,
    now: datetime,
    maintenance: Callable[[int], Sequence[Period]] | None = None,
) -> dict[int, float | None]:
    """Per device among ``device_ids``: its uptime over ``window`` ending at ``now``
    (``maintenance(device_id)``: the periods left out), the same figure as
    :func:`device_uptime`'s ``uptime_percent`` for that window; None with no known time or
    no such device.  Two queries whatever the number of devices (their health rows, their
    state changes), so a status page of many devices costs what one device does."""
    if not device_ids:
        return {}
    health = (
        await conn.execute(
            select(DEVICES.c.id, HEALTH.c.state, HEALTH.c.since)
            .select_from(DEVICES.outerjoin(HEALTH, HEALTH.c.device_id == DEVICES.c.id))
            .where(DEVICES.c.id.in_(device_ids))
        )
    ).all()
    found = [int(row.id) for row in health]
    start = now - window.length
    changes = await _changes(conn, found, start, now)
    out: dict[int, float | None] = dict.fromkeys(device_ids)
    for row in health:
        left_out = () if maintenance is None else maintenance(row.id)
        seconds = state_seconds(
            start, now, changes[row.id], _fallback(row.state, row.since), left_out
        )
        out[row.id] = shares(seconds).uptime_percent
    return out
