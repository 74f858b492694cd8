"""Device health rows (``device_health``) and their changes (``state_changes``), in SQL.

Each device's health is one row whose ``revision`` is compared and swapped on every
write, so each change of state is decided once, at the database.  The health itself is
JSON text here (``jobs.probe.health`` encodes and decodes the pure machine's ``Health``):
storage knows nothing of states.

A write takes the rows it changes first: on SQLite the write lock of the database
(:func:`take_write_lock`; in the check writer's transaction its INSERT already holds
it, so the hook skips it), on PostgreSQL the health rows (:func:`read_rows` with
``lock``, ``FOR UPDATE``); so no other writer can move a revision between the read and
the compare-and-swap.  The compare-and-swap stays as the guard: a miss raises
:class:`storage.writer.RetryBatch`, the transaction is rolled back and the whole unit of
work done again from fresh reads.  A batch costs a few statements whatever its size:
one read (chunks of :data:`CHUNK` devices), one executemany of the compare-and-swap,
and, when something changed, one insert of the state changes.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import Device, DeviceHealth, StateChange
from storage.types import driver_time, utcnow
from storage.writer import RetryBatch, insert_ignore

DEVICES: Table = Device.__table__  # type: ignore[attr-defined]
HEALTH: Table = DeviceHealth.__table__  # type: ignore[attr-defined]
CHANGES: Table = StateChange.__table__  # type: ignore[attr-defined]

# SQLite caps bound values per statement; a few hundred devices per statement is plenty.
CHUNK = 400


@dataclass(frozen=True, slots=True)
class HealthRow:
    """A device with its stored health (``health`` None: no row yet) and the settings
    the state machine and the stale check read."""

    device_id: int
    is_active: bool
    created_at: datetime
    interval_seconds: int | None
    timeout_seconds: float | None
    retry_interval_seconds: int | None
    failure_threshold: int
    success_threshold: int
    revision: int | None
    health: str | None  # JSON text


@dataclass(frozen=True, slots=True)
class HealthWrite:
    """A new health (JSON text) for a device whose row had ``old_revision``."""

    device_id: int
    old_revision: int
    revision: int
    state: str
    since: datetime
    health: str
    # When the device's silence started counting, in epoch seconds (the sweep's filter);
    # None: no silence changes its state.
    stale_from_s: float | None


@dataclass(frozen=True, slots=True)
class StateChangeRow:
    """A ``state_changes`` row as read back (and as the listeners of changes get it)."""

    id: int
    device_id: int
    revision: int
    from_state: str
    to_state: str
    at: datetime
    cause: str | None
    run_key: str | None


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


async def _rows_among(
    conn: AsyncConnection, stmt: Select[Any], device_ids: Sequence[int] | None
) -> list[Row[Any]]:
    """``stmt``'s rows (a select of devices) for the devices among ``device_ids`` (all
    when None), a chunk of ids per statement."""
    if device_ids is None:
        return list((await conn.execute(stmt)).all())
    found: list[Row[Any]] = []
    for chunk in _chunks(sorted(set(device_ids))):
        found.extend((await conn.execute(stmt.where(DEVICES.c.id.in_(chunk)))).all())
    return found


async def ensure_rows(conn: AsyncConnection, initial: Mapping[int, HealthWrite]) -> None:
    """Insert the health row of each device that has none (``ON CONFLICT DO NOTHING``:
    another writer's row wins).  One statement per chunk."""
    if not initial:
        return
    now = utcnow()
    values = [
        {
            "device_id": w.device_id,
            "state": w.state,
            "since": w.since,
            "revision": w.revision,
            "health": w.health,
            "updated_at": now,
            "stale_from_s": w.stale_from_s,
        }
        for w in initial.values()
    ]
    stmt = insert_ignore(conn, HEALTH, "device_id")
    for start in range(0, len(values), CHUNK):
        await conn.execute(stmt, values[start : start + CHUNK])


async def take_write_lock(conn: AsyncConnection) -> None:
    """On SQLite, take the database's write lock now (pysqlite begins a transaction only
    at the first write): no other writer commits between this transaction's reads and
    its compare-and-swap.  A no-op elsewhere."""
    if conn.dialect.name == "sqlite":
        await conn.execute(
            update(HEALTH).where(HEALTH.c.device_id == -1).values(revision=HEALTH.c.revision)
        )


async def read_rows(
    conn: AsyncConnection, device_ids: Sequence[int] | None = None, *, lock: bool = False
) -> dict[int, HealthRow]:
    """Devices (those among ``device_ids``, or all) with their health row if any, by id.
    ``lock``: only devices that have a row, locked for the rest of the transaction on
    PostgreSQL (``FOR UPDATE`` cannot take the missing side of an outer join).  A device
    that is gone has no entry."""
    d, h = DEVICES.c, HEALTH.c
    joined = (
        DEVICES.join(HEALTH, h.device_id == d.id)
        if lock
        else DEVICES.outerjoin(HEALTH, h.device_id == d.id)
    )
    stmt = (
        select(
            d.id,
            d.is_active,
            d.created_at,
            d.interval_seconds,
            d.timeout_seconds,
            d.retry_interval_seconds,
            d.failure_threshold,
            d.success_threshold,
            h.revision,
            h.health,
        )
        .select_from(joined)
        .order_by(d.id)
    )
    if lock and conn.dialect.name == "postgresql":
        # Lock the health rows only (the device rows are the API's), in id order: two
        # writers of overlapping batches queue instead of deadlocking.
        stmt = stmt.with_for_update(of=HEALTH)
    return {
        r.id: HealthRow(*r)  # type: ignore[call-arg]  # the columns, in order
        for r in await _rows_among(conn, stmt, device_ids)
    }


async def sweep_candidates(
    conn: AsyncConnection,
    *,
    now_s: float,
    default_interval_s: float,
    default_grace_s: float,
    paused: str,
) -> list[int]:
    """The devices the sweep may change at ``now_s`` (epoch seconds), by id: those with
    no health row; inactive and not ``paused``; active and ``paused``; active and silent
    for two intervals plus the grace (the device's timeout) since ``stale_from_s`` (a
    second early, so float rounding never leaves one out; NULL: no silence changes it).
    A superset of what the sweep changes: it still decides on each one's health.  One
    statement, nothing decoded: at 100,000 devices most sweeps read none."""
    d, h = DEVICES.c, HEALTH.c
    interval = func.coalesce(func.nullif(d.interval_seconds, 0), default_interval_s)
    grace = func.coalesce(func.nullif(d.timeout_seconds, 0), default_grace_s)
    active = d.is_active.is_(True)
    stmt = (
        select(d.id)
        .select_from(DEVICES.outerjoin(HEALTH, h.device_id == d.id))
        .where(
            or_(
                h.device_id.is_(None),
                and_(d.is_active.is_(False), h.state != paused),
                and_(active, h.state == paused),
                and_(
                    active,
                    h.state != paused,
                    h.stale_from_s + 2 * interval + grace < now_s + 1.0,
                ),
            )
        )
        .order_by(d.id)
    )
    return list((await conn.execute(stmt)).scalars().all())


async def retry_rows(
    conn: AsyncConnection, device_ids: Sequence[int] | None = None
) -> list[tuple[int, int, str]]:
    """``(device_id, retry_interval_seconds, health)`` of the devices that have a retry
    interval and a health row (among ``device_ids``, or all)."""
    d, h = DEVICES.c, HEALTH.c
    stmt = (
        select(d.id, d.retry_interval_seconds, h.health)
        .select_from(DEVICES.join(HEALTH, h.device_id == d.id))
        .where(d.retry_interval_seconds.is_not(None))
    )
    return [tuple(r) for r in await _rows_among(conn, stmt, device_ids)]  # type: ignore[misc]


# The compare-and-swap's parameters, in the order of HealthWrite's fields, then the time.
_SWAP_KEYS = (
    "device_id",
    "old_revision",
    "revision",
    "state",
    "since",
    "health",
    "stale_from_s",
    "now",
)


@functools.cache
def _swap_statement(dialect: Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
    """The compare-and-swap compiled once for ``dialect``, and a getter of its positional
    parameters from a dict of :data:`_SWAP_KEYS`: run as the driver's executemany of
    tuples, without SQLAlchemy's per-row parameter processing."""
    h = HEALTH.c
    stmt = (
        update(HEALTH)
        .where(
            h.device_id == bindparam("device_id", type_=h.device_id.type),
            h.revision == bindparam("old_revision", type_=h.revision.type),
        )
        .values(
            revision=bindparam("revision", type_=h.revision.type),
            state=bindparam("state", type_=h.state.type),
            since=bindparam("since", type_=h.since.type),
            health=bindparam("health", type_=h.health.type),
            stale_from_s=bindparam("stale_from_s", type_=h.stale_from_s.type),
            updated_at=bindparam("now", type_=h.updated_at.type),
        )
    )
    compiled = stmt.compile(dialect=dialect)
    order = compiled.positiontup or ()
    assert set(order) == set(_SWAP_KEYS), order
    return str(compiled), operator.itemgetter(*order)


async def swap(conn: AsyncConnection, writes: Sequence[HealthWrite]) -> None:
    """Compare-and-swap each device's health (``WHERE revision = old``), one executemany.

    Raises :class:`RetryBatch` when the driver can tell that fewer rows changed than
    asked (another writer moved a revision; cannot happen under the locks taken above)."""
    if not writes:
        return
    dialect = conn.dialect
    sql, values = _swap_statement(dialect)
    now = driver_time(dialect, utcnow())
    params = [
        values(
            {
                "device_id": w.device_id,
                "old_revision": w.old_revision,
                "revision": w.revision,
                "state": w.state,
                "since": driver_time(dialect, w.since),
                "health": w.health,
                "stale_from_s": w.stale_from_s,
                "now": now,
            }
        )
        for w in writes
    ]
    result = await conn.exec_driver_sql(sql, params)
    sane = len(params) == 1 or dialect.supports_sane_multi_rowcount
    if sane and result.rowcount != len(params):
        raise RetryBatch(
            f"device_health compare-and-swap missed: {result.rowcount} of {len(params)} rows"
        )


async def insert_changes(
    conn: AsyncConnection, changes: Sequence[Mapping[str, Any]]
) -> list[StateChangeRow]:
    """Insert ``state_changes`` rows (unique per device and revision) and return them
    with their ids, in the order given."""
    if not changes:
        return []
    stmt = insert(CHANGES).returning(*CHANGES.c, sort_by_parameter_order=True)
    rows = (await conn.execute(stmt, list(changes))).all()
    return [_change(r) for r in rows]


def _change(r: Any) -> StateChangeRow:
    return StateChangeRow(
        id=r.id,
        device_id=r.device_id,
        revision=r.revision,
        from_state=r.from_state,
        to_state=r.to_state,
        at=r.at,
        cause=r.cause,
        run_key=r.run_key,
    )


async def list_changes(
    conn: AsyncConnection, device_id: int, *, limit: int, before: datetime | None = None
) -> list[StateChangeRow]:
    """A device's state changes, newest first (``before``: only those dated earlier)."""
    c = CHANGES.c
    stmt = select(CHANGES).where(c.device_id == device_id)
    if before is not None:
        stmt = stmt.where(c.at < before)
    stmt = stmt.order_by(c.at.desc(), c.revision.desc()).limit(limit)
    return [_change(r) for r in (await conn.execute(stmt)).all()]


async def list_down_edges(
    conn: AsyncConnection, device_id: int, *, limit: int, before: datetime | None = None
) -> list[StateChangeRow]:
    """The changes into and out of ``down`` of the newest ``limit`` incidents (``before``:
    only incidents that started earlier), oldest first: what :func:`incidents_of` reads.

    Incidents do not overlap, so from the oldest start wanted the edges alternate start,
    end, start, end in revision order: twice as many as the starts hold every end, the
    newest one's included even when it came after ``before``."""
    c = CHANGES.c
    starts = select(c.revision).where(c.device_id == device_id, c.to_state == "down")
    if before is not None:
        starts = starts.where(c.at < before)
    starts = starts.order_by(c.at.desc(), c.revision.desc()).limit(limit)
    revisions = (await conn.execute(starts)).scalars().all()
    if not revisions:
        return []
    stmt = (
        select(CHANGES)
        .where(
            c.device_id == device_id,
            or_(c.to_state == "down", c.from_state == "down"),
            c.revision >= min(revisions),
        )
        .order_by(c.revision)
        .limit(2 * len(revisions))
    )
    return [_change(r) for r in (await conn.execute(stmt)).all()]


@dataclass(frozen=True, slots=True)
class Incident:
    """A down period: from a change to ``down`` to the next change away from it."""

    started_at: datetime
    ended_at: datetime | None
    cause: str | None
    duration_seconds: float
    started_revision: int


def incidents_of(edges: Sequence[StateChangeRow], now: datetime) -> list[Incident]:
    """The down periods among a device's changes into and out of ``down`` (any order),
    newest first; an open one lasts until ``now`` (pure).  An end whose start is older
    than the edges given is left out."""
    found: list[Incident] = []
    start: StateChangeRow | None = None
    for edge in sorted(edges, key=lambda e: e.revision):
        if edge.to_state == "down":
            start = edge
        elif edge.from_state == "down" and start is not None:
            seconds = (edge.at - start.at).total_seconds()
            found.append(Incident(start.at, edge.at, start.cause, seconds, start.revision))
            start = None
    if start is not None:
        seconds = max(0.0, (now - start.at).total_seconds())
        found.append(Incident(start.at, None, start.cause, seconds, start.revision))
    return sorted(found, key=lambda i: i.started_revision, reverse=True)
