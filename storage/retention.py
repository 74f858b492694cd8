"""Retention: raw results older than ``RETENTION_DAYS`` and rollups older than
``ROLLUP_RETENTION_DAYS`` are deleted; state changes are kept.

Deletes go in batches of at most ``batch`` rows, one short transaction each, so the
writers of results (SQLite has one writer at a time) wait at most one batch.  Old results
are found through the ``(device_id, checked_at)`` index, a slice of devices at a time: no
batch scans the whole table.  A row younger than the limit is never selected, whatever is
written meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Delete, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import CheckResult, CheckRollup, Device

log = logging.getLogger(__name__)

DEVICES: Table = Device.__table__  # type: ignore[attr-defined]
CHECKS: Table = CheckResult.__table__  # type: ignore[attr-defined]
ROLLUPS: Table = CheckRollup.__table__  # type: ignore[attr-defined]
# Devices per lookup of old results (SQLite caps bound parameters).
DEVICE_SLICE = 200


@dataclass(frozen=True, slots=True)
class Pruned:
    checks: int
    rollups: int
    batches: int


async def _device_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [int(i) for i in (await conn.execute(select(DEVICES.c.id))).scalars()]


async def _delete_batches(engine: AsyncEngine, stmt: Delete, batch: int) -> tuple[int, int]:
    """Run ``stmt`` (a delete of at most ``batch`` rows) until it deletes fewer than ``batch`` rows;
    (rows, transactions)."""
    rows = batches = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(stmt)).rowcount
        batches += 1
        rows += max(deleted, 0)
        if deleted < batch:
            return rows, batches


async def _prune_slices(
    engine: AsyncEngine,
    table: Table,
    key: Sequence[ColumnElement[Any]],
    old: Sequence[ColumnElement[bool]],
    batch: int,
    device_ids: Sequence[int],
) -> tuple[int, int]:
    """Delete ``table``'s rows that are ``old``, a slice of devices at a time, each batch
    found through ``key`` (an index that leads with device_id); (rows, transactions)."""
    rows = batches = 0
    for i in range(0, len(device_ids), DEVICE_SLICE):
        ids = device_ids[i : i + DEVICE_SLICE]
        found = select(*key).where(table.c.device_id.in_(ids), *old).limit(batch)
        target = key[0].in_(found) if len(key) == 1 else tuple_(*key).in_(found)
        n, b = await _delete_batches(engine, delete(table).where(target), batch)
        rows, batches = rows + n, batches + b
    return rows, batches


async def prune_checks(
    engine: AsyncEngine, older_than: datetime, batch: int, device_ids: Sequence[int]
) -> tuple[int, int]:
    """Delete results with ``checked_at`` before ``older_than``; (rows, transactions)."""
    old = [CHECKS.c.checked_at < older_than]
    return await _prune_slices(engine, CHECKS, [CHECKS.c.id], old, batch, device_ids)


async def prune_rollups(
    engine: AsyncEngine, older_than: datetime, batch: int, device_ids: Sequence[int]
) -> tuple[int, int]:
    """Delete rollups (hourly and daily) that start before ``older_than``, found through
    the primary key (device_id, period, start)."""
    key = [ROLLUPS.c.device_id, ROLLUPS.c.period, ROLLUPS.c.start]
    old = [ROLLUPS.c.period.in_(("h", "d")), ROLLUPS.c.start < older_than]
    return await _prune_slices(engine, ROLLUPS, key, old, batch, device_ids)


async def prune(
    engine: AsyncEngine,
    now: datetime,
    *,
    retention_days: int,
    rollup_retention_days: int,
    batch: int = 2000,
) -> Pruned:
    """One retention run; a limit of 0 days keeps that kind of row for ever."""
    checks = rollups = batches = 0
    device_ids = await _device_ids(engine)
    if retention_days > 0:
        checks, b = await prune_checks(
            engine, now - timedelta(days=retention_days), batch, device_ids
        )
        batches += b
    if rollup_retention_days > 0:
        rollups, b = await prune_rollups(
            engine, now - timedelta(days=rollup_retention_days), batch, device_ids
        )
        batches += b
    return Pruned(checks=checks, rollups=rollups, batches=batches)
