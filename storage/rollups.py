"""``check_rollups``: results summed per device and hour/day, kept up to date as they land.

:func:`rollups_hook` is an :data:`storage.writer.AfterInsert` hook of the check writer: in
the batch's own transaction it sums the rows that landed (:func:`storage.uptime_maths.
rollup_rows`) and adds them with one ``INSERT ... ON CONFLICT (device_id, period, start) DO
UPDATE SET checks = check_rollups.checks + excluded.checks, ...`` of many rows.  The
addition happens in the database, row by row, so writers in several processes never lose
each other's counts; a redelivered result reaches no hook, so nothing counts twice.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, and_, bindparam, false, func, literal_column, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import CheckRollup
from storage.uptime_maths import BUCKET_COLUMNS, SUM_COLUMNS, Range, rollup_rows
from storage.writer import PostCommit, Row

ROLLUPS: Table = CheckRollup.__table__  # type: ignore[attr-defined]


def upsert_statement(dialect: Dialect | str) -> Any:
    """The additive upsert of rollup rows for ``dialect`` (``"sqlite"`` or
    ``"postgresql"``): sums added, the maximum kept."""
    return _upsert(dialect if isinstance(dialect, str) else dialect.name)


@functools.cache
def _upsert(name: str) -> Any:
    # Built once per dialect: building it took a quarter of the hook's time.
    ins = pg_insert(ROLLUPS) if name == "postgresql" else sqlite_insert(ROLLUPS)
    greatest = func.greatest if name == "postgresql" else func.max  # SQLite's max(a, b)
    changes: dict[str, Any] = {c: ROLLUPS.c[c] + ins.excluded[c] for c in SUM_COLUMNS}
    changes["latency_max_ms"] = greatest(ROLLUPS.c.latency_max_ms, ins.excluded.latency_max_ms)
    return ins.on_conflict_do_update(
        index_elements=[ROLLUPS.c.device_id, ROLLUPS.c.period, ROLLUPS.c.start], set_=changes
    )


# The columns of a rollup row as rollup_rows() makes it.
_COLUMNS = ("device_id", "period", "start", *SUM_COLUMNS, "latency_max_ms")
# How SQLAlchemy's SQLite DateTime stores a (UTC) time.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


@functools.cache
def _driver_upsert(dialect: Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
    """The upsert compiled for ``dialect``, and a getter of a rollup row's values in the
    order of its positional parameters."""
    compiled = upsert_statement(dialect).compile(dialect=dialect, column_keys=list(_COLUMNS))
    return str(compiled), operator.itemgetter(*(compiled.positiontup or ()))


def _driver_rows(dialect: Dialect, sums: list[dict[str, Any]]) -> list[Any]:
    """Rollup rows (changed in place) as the driver's parameter tuples, with ``start`` as
    the column type would bind it (SQLite: UTC text; PostgreSQL: the aware datetime)."""
    _, values = _driver_upsert(dialect)
    if dialect.name == "sqlite":
        for row in sums:
            row["start"] = row["start"].strftime(_SQLITE_TIME)
    return list(map(values, sums))


async def add_to_rollups(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add stored check rows to their rollups (one statement); how many rollup rows.

    The upsert is compiled once and run as the driver's executemany of tuples: through
    SQLAlchemy's per-row parameter processing it cost as much CPU as storing the results
    themselves."""
    sums = rollup_rows(rows)
    if sums:
        sql, _ = _driver_upsert(conn.dialect)
        await conn.exec_driver_sql(sql, _driver_rows(conn.dialect, sums))
    return len(sums)


def add_to_rollups_sync(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """:func:`add_to_rollups` on a synchronous connection (bulk loads: the benchmark)."""
    sums = rollup_rows(rows)
    if sums:
        sql, _ = _driver_upsert(conn.dialect)
        conn.exec_driver_sql(sql, _driver_rows(conn.dialect, sums))
    return len(sums)


async def rollups_hook(conn: AsyncConnection, rows: Sequence[Row]) -> PostCommit | None:
    """The check writer's hook: the landed rows into their rollups; nothing to announce."""
    await add_to_rollups(conn, rows)
    return None


def _sums() -> list[Any]:
    return [
        *(func.coalesce(func.sum(ROLLUPS.c[c]), 0).label(c) for c in SUM_COLUMNS),
        func.coalesce(func.max(ROLLUPS.c.latency_max_ms), 0.0).label("latency_max_ms"),
    ]


Shape = tuple[tuple[str, ...], ...]


@functools.cache
def _per_window_statement(shape: Shape) -> Any:
    """The ``UNION ALL`` of one aggregate per window, for windows whose ranges have the
    periods of ``shape``; bound parameters ``device_id``, ``s<w>_<r>`` and ``u<w>_<r>``.
    Built once per shape: building this statement cost more than running it."""
    parts = []
    for i, periods in enumerate(shape):
        covers = or_(
            false(),
            *(
                and_(
                    ROLLUPS.c.period == period,
                    ROLLUPS.c.start >= bindparam(f"s{i}_{j}", type_=ROLLUPS.c.start.type),
                    ROLLUPS.c.start < bindparam(f"u{i}_{j}", type_=ROLLUPS.c.start.type),
                )
                for j, period in enumerate(periods)
            ),
        )
        parts.append(
            select(literal_column(str(i)).label("window_index"), *_sums()).where(
                ROLLUPS.c.device_id == bindparam("device_id"), covers
            )
        )
    return union_all(*parts)


async def summed_rollups_per_window(
    conn: AsyncConnection, device_id: int, windows: Sequence[Sequence[Range]]
) -> list[dict[str, Any]]:
    """One device's rollups summed over each window's ranges, in one query (a ``UNION
    ALL`` of one aggregate per window); one row per window, zeros where none."""
    if not windows:
        return []
    shape = tuple(tuple(r.period for r in ranges) for ranges in windows)
    params: dict[str, Any] = {"device_id": device_id}
    for i, ranges in enumerate(windows):
        for j, r in enumerate(ranges):
            params[f"s{i}_{j}"], params[f"u{i}_{j}"] = r.since, r.until
    result = await conn.execute(_per_window_statement(shape), params)
    by_window = {int(row["window_index"]): dict(row) for row in result.mappings()}
    return [by_window.get(i, {}) for i in range(len(windows))]


def histogram(summed: Mapping[str, Any]) -> list[int]:
    """The bucket counts of a summed rollup, in :data:`BUCKET_COLUMNS` order."""
    return [int(summed.get(c) or 0) for c in BUCKET_COLUMNS]
