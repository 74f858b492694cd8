"""Queries.  Functions take a session or engine; none of them commits behind the caller's back
except where the name says so."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, Table, delete, func, insert, literal
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.alert_models import MaintenanceWindow, Notification
from storage.engine import connected
from storage.models import CheckResult, CheckRollup, Device, DeviceHealth, StateChange
from storage.rollups import rollups_hook
from storage.types import utcnow
from storage.writer import AfterInsert, run_hooks


async def list_devices(
    session: AsyncSession,
    *,
    is_active: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Sequence[Device]:
    stmt = select(Device).order_by(col(Device.id))
    if is_active is not None:
        stmt = stmt.where(Device.is_active == is_active)
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.exec(stmt)).all()


async def get_device(session: AsyncSession, device_id: int) -> Device | None:
    return await session.get(Device, device_id)


RowT = TypeVar("RowT", bound=SQLModel)


async def add_row(session: AsyncSession, row: RowT) -> RowT:
    """Insert one row, commit, and return it with its id."""
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def update_row(session: AsyncSession, row: RowT, **changes: Any) -> RowT:
    """Apply ``changes``, stamp ``updated_at``, commit, and return the fresh row."""
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()  # type: ignore[attr-defined]
    return await add_row(session, row)


async def create_device(session: AsyncSession, **fields: Any) -> Device:
    return await add_row(session, Device(**fields))


async def update_device(session: AsyncSession, device: Device, **changes: Any) -> Device:
    return await update_row(session, device, **changes)


async def delete_device(session: AsyncSession, device: Device) -> None:
    """Delete a device and everything about it (checks, rollups, health, state changes,
    its notifications; its snooze is a column of its row) and take its id out of the
    maintenance windows that name it, in one transaction: all of it, since SQLite may give
    the id to the next new device, which must not inherit a history, an entry in
    ``GET /notifications?device_id=`` or a window.

    The device row goes first: on PostgreSQL that locks it, so an
    :func:`insert_device_check` under way either waits and then finds no device, or
    commits first and its check is deleted here with the rest.  A delivery still queued
    for it finds no ledger row and sends nothing."""
    await session.delete(device)
    await session.flush()
    for history in _DEVICE_HISTORY:
        await session.exec(delete(history).where(history.c.device_id == device.id))  # type: ignore[call-overload]
    # A window's device_ids is a JSON list: read the few windows, rewrite those naming it
    # (a window left with no device covers none; null would mean every device).
    for window in (await session.exec(select(MaintenanceWindow))).all():
        if window.device_ids is not None and device.id in window.device_ids:
            window.device_ids = [i for i in window.device_ids if i != device.id]
            window.updated_at = utcnow()
            session.add(window)
    await session.commit()


# The tables whose rows belong to one device (``device_id``), deleted with it.
_DEVICE_HISTORY: tuple[Table, ...] = tuple(
    m.__table__  # type: ignore[union-attr]
    for m in (CheckResult, CheckRollup, DeviceHealth, StateChange, Notification)
)


async def list_checks(
    session: AsyncSession,
    device_id: int,
    limit: int = 50,
    *,
    offset: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[CheckResult]:
    """Newest first; ``since`` <= checked_at < ``until`` when given."""
    stmt = select(CheckResult).where(CheckResult.device_id == device_id)
    if since is not None:
        stmt = stmt.where(col(CheckResult.checked_at) >= since)
    if until is not None:
        stmt = stmt.where(col(CheckResult.checked_at) < until)
    stmt = (
        stmt.order_by(col(CheckResult.checked_at).desc(), col(CheckResult.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


async def count_checks(session: AsyncSession, device_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(CheckResult)
    if device_id is not None:
        stmt = stmt.where(CheckResult.device_id == device_id)
    return int((await session.exec(stmt)).one())


async def insert_device_check(
    engine: AsyncEngine, row: dict[str, Any], after_insert: Sequence[AfterInsert] = ()
) -> dict[str, Any] | None:
    """Insert ``row`` if its device exists and return it as stored; None when it does not.

    One statement (``INSERT ... SELECT ... FROM devices WHERE id = ... RETURNING``), so a
    device deleted at the same time cannot be left with an orphan check: SQLite runs the
    statement alone, and PostgreSQL holds a key-share lock on the device row until the
    insert commits (see :func:`delete_device`).  For manual rows; the batch writer is the
    hot path.  ``after_insert``: hooks like the batch writer's, in the same transaction,
    their actions run after the commit."""
    table = CheckResult.__table__  # type: ignore[attr-defined]
    devices = Device.__table__  # type: ignore[attr-defined]
    values = (
        core_select(*(literal(value, table.c[name].type) for name, value in row.items()))
        .where(devices.c.id == row["device_id"])
        .with_for_update(read=True, key_share=True)
    )
    stmt = insert(table).from_select(list(row), values).returning(*table.c)
    async with engine.begin() as conn:
        found = (await conn.execute(stmt)).mappings().first()
        if found is None:
            return None
        stored = dict(found)
        # What follows from the row (its rollups, its device's health) lands with it, as in
        # BatchWriter.
        actions = await run_hooks(conn, (rollups_hook, *after_insert), [stored])
    for action in actions:
        await action()
    return stored


async def get_check_by_run_key(session: AsyncSession, run_key: str) -> CheckResult | None:
    stmt = select(CheckResult).where(CheckResult.run_key == run_key)
    return (await session.exec(stmt)).first()


# What a probe job carries of its device (jobs.probe.job.spec_for).
PROBE_FIELDS = (
    "id",
    "address",
    "interval_seconds",
    "timeout_seconds",
    "method",
    "headers",
    "body",
    "follow_redirects",
    "verify_tls",
    "conditions",
    "degraded_when",
    "updated_at",
)


async def probe_fields(
    bind: AsyncEngine | AsyncConnection,
    *,
    ids: Sequence[int] | None = None,
    active_only: bool = False,
) -> list[Row[Any]]:
    """:data:`PROBE_FIELDS` of the devices among ``ids`` (all
    when None), by id, through Core: what a probe job needs, without building an ORM
    object per device (a POST for 5,000 devices spent ~5 % of its CPU on those).  One
    query per 500 ids: SQLite caps bound values."""
    table = Device.__table__  # type: ignore[attr-defined]
    stmt = core_select(*(table.c[name] for name in PROBE_FIELDS)).order_by(table.c.id)
    if active_only:
        stmt = stmt.where(table.c.is_active.is_(True))
    async with connected(bind) as conn:
        if ids is None:
            return list((await conn.execute(stmt)).all())
        rows: list[Row[Any]] = []
        for start in range(0, len(ids), 500):
            chunk = stmt.where(table.c.id.in_(ids[start : start + 500]))
            rows.extend((await conn.execute(chunk)).all())
        return rows


async def checks_by_run_keys(session: AsyncSession, run_keys: Sequence[str]) -> list[CheckResult]:
    """The stored results among ``run_keys`` (queried in chunks: SQLite caps bound values)."""
    found: list[CheckResult] = []
    for start in range(0, len(run_keys), 500):
        chunk = run_keys[start : start + 500]
        stmt = select(CheckResult).where(col(CheckResult.run_key).in_(chunk))
        found.extend((await session.exec(stmt)).all())
    return found
