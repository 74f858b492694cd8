"""Queries of the alert tables (channels, notifications, maintenance windows).

The notification ledger is written with Core statements keyed by (state change, channel,
reminder) and guarded by status, so whichever process loses a race changes nothing and
learns it from the row count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.alert_models import Channel, MaintenanceWindow, Notification
from storage.models import CheckResult, Device, StateChange
from storage.types import utcnow
from storage.writer import insert_ignore

NOTIFICATIONS: Table = Notification.__table__  # type: ignore[attr-defined]
STATE_CHANGES: Table = StateChange.__table__  # type: ignore[attr-defined]
CHECKS: Table = CheckResult.__table__  # type: ignore[attr-defined]
CHANNELS: Table = Channel.__table__  # type: ignore[attr-defined]
WINDOWS: Table = MaintenanceWindow.__table__  # type: ignore[attr-defined]
DEVICES: Table = Device.__table__  # type: ignore[attr-defined]
_CHUNK = 500  # ids per IN (...): under SQLite's bound-parameter limit


@dataclass(frozen=True)
class AlertTarget:
    """What a device's alerts depend on, as :func:`alert_targets` reads it."""

    device_id: int
    notify_on: list[str] | None
    channel_ids: list[int] | None
    snoozed_until: datetime | None


async def alert_targets(
    engine: AsyncEngine, device_ids: Sequence[int]
) -> tuple[list[tuple[int, bool]], dict[int, AlertTarget]]:
    """The active channels as (id, is_default), and, only when there is one, the
    devices ``device_ids`` that exist, by id: Core selects on one connection, the first
    alone when no channel is active (the cost of a batch of changes nobody is told of)."""
    c, d = CHANNELS.c, DEVICES.c
    async with engine.connect() as conn:
        channels = [
            (int(i), bool(default))
            for i, default in await conn.execute(
                select(c.id, c.is_default).where(c.is_active).order_by(c.id)
            )
        ]
        if not channels:
            return [], {}
        ids = sorted(set(device_ids))
        targets: dict[int, AlertTarget] = {}
        stmt = select(d.id, d.notify_on, d.channel_ids, d.snoozed_until)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for i, notify_on, channel_ids, snoozed in await conn.execute(
                stmt.where(d.id.in_(chunk))
            ):
                targets[int(i)] = AlertTarget(int(i), notify_on, channel_ids, snoozed)
    return channels, targets


async def list_channels(session: AsyncSession) -> Sequence[Channel]:
    return (await session.exec(orm_select(Channel).order_by(col(Channel.id)))).all()


async def existing_channel_ids(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    stmt = orm_select(Channel.id).where(col(Channel.id).in_(list(ids)))
    return {i for i in (await session.exec(stmt)).all() if i is not None}


async def delete_channel(session: AsyncSession, channel: Channel) -> int:
    """Delete ``channel`` and take its id out of the devices' ``channel_ids`` (a device
    left with none notifies no channel, as before: not the default ones), in one
    transaction; returns how many devices named it.  SQLite may give the id to the next
    new channel, which devices did not choose.  Its notifications stay (the history)."""
    await session.delete(channel)
    await session.flush()
    devices: Table = Device.__table__  # type: ignore[attr-defined]
    stmt: Any = select(devices.c.id, devices.c.channel_ids).where(
        devices.c.channel_ids.is_not(None)
    )
    named = (await session.exec(stmt)).all()
    changed = 0
    for device_id, ids in named:
        if ids and channel.id in ids:
            kept = [i for i in ids if i != channel.id]
            change: Any = update(devices).where(devices.c.id == device_id)
            await session.exec(change.values(channel_ids=kept, updated_at=utcnow()))
            changed += 1
    await session.commit()
    return changed


async def list_windows(session: AsyncSession, *, active_only: bool = False) -> Sequence[Any]:
    stmt = orm_select(MaintenanceWindow).order_by(col(MaintenanceWindow.id))
    if active_only:
        stmt = stmt.where(col(MaintenanceWindow.is_active).is_(True))
    return (await session.exec(stmt)).all()


async def active_windows(engine: AsyncEngine) -> list[Any]:
    """The active maintenance windows' rows (Core, one select), by id: each has the
    attributes of :class:`MaintenanceWindow`."""
    w = WINDOWS.c
    async with engine.connect() as conn:
        return list((await conn.execute(select(WINDOWS).where(w.is_active).order_by(w.id))).all())


async def list_notifications(
    session: AsyncSession,
    *,
    device_id: int | None,
    channel_id: int | None,
    status: str | None,
    limit: int,
    before_id: int | None,
) -> Sequence[Notification]:
    """Newest first; ``before_id`` pages back (the id of the last row of a page)."""
    stmt = orm_select(Notification).order_by(col(Notification.id).desc()).limit(limit)
    if device_id is not None:
        stmt = stmt.where(Notification.device_id == device_id)
    if channel_id is not None:
        stmt = stmt.where(Notification.channel_id == channel_id)
    if status is not None:
        stmt = stmt.where(Notification.status == status)
    if before_id is not None:
        stmt = stmt.where(col(Notification.id) < before_id)
    return (await session.exec(stmt)).all()


async def record_notifications(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ledger rows, skipping those whose (state change, channel, reminder) is
    there already; returns how many landed."""
    if not rows:
        return 0
    now = utcnow()
    values = [{"created_at": now, "updated_at": now, **r} for r in rows]
    key = ("state_change_id", "channel_id", "reminder")
    stmt = insert_ignore(engine, NOTIFICATIONS, *key).values(values).returning(NOTIFICATIONS.c.id)
    async with engine.begin() as conn:
        return len((await conn.execute(stmt)).all())


async def record_notifications_by_change(
    engine: AsyncEngine, rows: Sequence[dict[str, Any]]
) -> Counter[int]:
    """:func:`record_notifications` in one statement for many state changes: how many
    rows landed for each ``state_change_id`` (absent: none, another call got there)."""
    if not rows:
        return Counter()
    now = utcnow()
    values = [{"created_at": now, "updated_at": now, **r} for r in rows]
    key = ("state_change_id", "channel_id", "reminder")
    landed: Counter[int] = Counter()
    async with engine.begin() as conn:
        for start in range(0, len(values), _CHUNK):  # 8 parameters a row
            stmt = (
                insert_ignore(engine, NOTIFICATIONS, *key)
                .values(values[start : start + _CHUNK])
                .returning(NOTIFICATIONS.c.state_change_id)
            )
            landed.update(int(i) for i in (await conn.execute(stmt)).scalars())
    return landed


def _key(state_change_id: int, channel_id: int, reminder: int) -> Any:
    c = NOTIFICATIONS.c
    return (
        (c.state_change_id == state_change_id)
        & (c.channel_id == channel_id)
        & (c.reminder == reminder)
    )


async def get_notification(
    engine: AsyncEngine, state_change_id: int, channel_id: int, reminder: int
) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(NOTIFICATIONS).where(_key(state_change_id, channel_id, reminder))
            )
        ).first()
    return None if row is None else dict(row._mapping)


async def note_attempt(
    engine: AsyncEngine,
    state_change_id: int,
    channel_id: int,
    reminder: int,
    attempt: int,
    *,
    response_code: int | None,
    error: str | None,
) -> None:
    """Count an attempt that failed (the row stays pending)."""
    c = NOTIFICATIONS.c
    stmt = (
        update(NOTIFICATIONS)
        .where(_key(state_change_id, channel_id, reminder) & (c.status == "pending"))
        .values(attempts=attempt, response_code=response_code, error=error, updated_at=utcnow())
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def finish_notification(
    engine: AsyncEngine,
    state_change_id: int,
    channel_id: int,
    reminder: int,
    *,
    status: str,
    attempt: int,
    response_code: int | None,
    error: str | None,
    at: datetime,
) -> int | None:
    """Move a pending row to ``sent`` or ``failed``; returns its id if this call did it
    (None: another delivery of the same notification finished it first)."""
    c = NOTIFICATIONS.c
    stmt = (
        update(NOTIFICATIONS)
        .where(_key(state_change_id, channel_id, reminder) & (c.status == "pending"))
        .values(
            status=status,
            attempts=attempt,
            response_code=response_code,
            error=error,
            updated_at=at,
            sent_at=at if status == "sent" else None,
        )
        .returning(c.id)
    )
    async with engine.begin() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else int(row[0])


async def state_change(engine: AsyncEngine, change_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(STATE_CHANGES).where(STATE_CHANGES.c.id == change_id))
        ).first()
    return None if row is None else dict(row._mapping)


async def last_result(engine: AsyncEngine, device_id: int) -> dict[str, Any] | None:
    c = CHECKS.c
    stmt = (
        select(c.status_up, c.outcome, c.latency_ms, c.status_code, c.error, c.checked_at)
        .where(c.device_id == device_id)
        .order_by(c.checked_at.desc(), c.id.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else dict(row._mapping)


def _latest_changes() -> Any:
    """A subquery of each device's latest state change's id (``latest_id``)."""
    sc = STATE_CHANGES.c
    top = select(sc.device_id, func.max(sc.revision).label("rev")).group_by(sc.device_id).subquery()
    latest = select(sc.id.label("latest_id")).join(
        top, (top.c.device_id == sc.device_id) & (top.c.rev == sc.revision)
    )
    return latest.subquery()


async def latest_changes_down(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The latest state change of each device with reminders on, where it went down."""
    sc = STATE_CHANGES.c
    sub = _latest_changes()
    stmt = (
        select(STATE_CHANGES, DEVICES.c.reminder_every_minutes)
        .join(sub, sub.c.latest_id == sc.id)
        .join(DEVICES, DEVICES.c.id == sc.device_id)
        .where((sc.to_state == "down") & (DEVICES.c.reminder_every_minutes > 0))
        .where(DEVICES.c.is_active.is_(True))
    )
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def held_changes(
    engine: AsyncEngine, states: Sequence[str], held_prefix: str
) -> list[dict[str, Any]]:
    """Each (latest state change, channel) of an active device whose change went to one
    of ``states`` and nobody was told of: every ledger row of the pair is ``suppressed``,
    its first (reminder 0) with a reason starting ``held_prefix``.  Each row: the change's
    columns, ``channel_id``, ``last_reminder`` (the highest number recorded) and
    ``held_reason`` (reminder 0's).  One select; the ledger is read through its unique
    key's index, for the latest changes in ``states`` only."""
    sc, n = STATE_CHANGES.c, NOTIFICATIONS.c
    sub = _latest_changes()
    ledger = (
        select(
            n.state_change_id,
            n.channel_id,
            func.max(n.reminder).label("last_reminder"),
            func.sum(case((n.status != "suppressed", 1), else_=0)).label("told"),
            func.max(case((n.reminder == 0, n.reason), else_=None)).label("held_reason"),
        )
        .join(sub, sub.c.latest_id == n.state_change_id)
        .join(STATE_CHANGES, sc.id == n.state_change_id)
        .where(sc.to_state.in_(list(states)))
        .group_by(n.state_change_id, n.channel_id)
        .subquery()
    )
    stmt = (
        select(STATE_CHANGES, ledger.c.channel_id, ledger.c.last_reminder, ledger.c.held_reason)
        .join(ledger, ledger.c.state_change_id == sc.id)
        .join(DEVICES, DEVICES.c.id == sc.device_id)
        .where(DEVICES.c.is_active.is_(True))
        .where((ledger.c.told == 0) & ledger.c.held_reason.startswith(held_prefix))
        .order_by(sc.id, ledger.c.channel_id)
    )
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def stale_pending(engine: AsyncEngine, before: datetime) -> list[dict[str, Any]]:
    """Pending notifications not touched since ``before`` (their message was lost: a
    kick that failed, or a queue that dropped it)."""
    c = NOTIFICATIONS.c
    stmt = (
        select(c.state_change_id, c.channel_id, c.reminder, c.attempts)
        .where((c.status == "pending") & (c.updated_at < before))
        .order_by(c.id)
        .limit(1000)
    )
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def touch(engine: AsyncEngine, state_change_id: int, channel_id: int, reminder: int) -> None:
    stmt = (
        update(NOTIFICATIONS)
        .where(_key(state_change_id, channel_id, reminder) & (NOTIFICATIONS.c.status == "pending"))
        .values(updated_at=utcnow())
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)
