"""Group commit: results from many concurrent tasks written in one transaction.

A task hands its row to :meth:`BatchWriter.write` and waits; the writer flushes when
``batch_size`` rows are waiting or ``flush_ms`` after the first one arrived, with one
``INSERT ... ON CONFLICT DO NOTHING ... RETURNING`` of many rows (SQLAlchemy Core, not the
ORM: about 16x faster here).  ``write`` returns only after the batch committed, so the
task, and with it the JetStream ack, never runs ahead of durable storage; it says
whether the row was inserted or its key was already stored.

What follows from a stored row in the same table's batch (a device's health, its rollups)
is written by :data:`AfterInsert` hooks in the same transaction, with only the rows that
landed (a redelivered row reaches no hook twice); a hook may return a :data:`PostCommit`
action (announce what changed), run once the transaction committed and before any
waiter is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

Row = dict[str, Any]
# Run after the commit that made a hook's changes durable (e.g. publish events).
PostCommit = Callable[[], Awaitable[None]]
# Inside the batch's transaction, with the rows inserted (in batch order).
AfterInsert = Callable[[AsyncConnection, Sequence[Row]], Awaitable[PostCommit | None]]


class WriterClosedError(RuntimeError):
    """The writer was closed; the row was not stored."""


class RetryBatch(Exception):
    """Raised by a hook that found the database moved under it (a compare-and-swap
    missed): the batch's transaction is rolled back and the batch written again."""


def insert_ignore(bind: AsyncEngine | AsyncConnection, table: Table, *key: str) -> Any:
    """``INSERT ... ON CONFLICT (key...) DO NOTHING`` for the dialect of ``bind``."""
    ins = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    return ins(table).on_conflict_do_nothing(index_elements=list(key))


class BatchWriter:
    """Idempotent batched inserts into one table keyed by a unique column (its primary
    key is an integer ``id``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        key: str,
        *,
        batch_size: int = 200,
        flush_ms: float = 5.0,
        retries: int = 5,
        after_insert: Sequence[AfterInsert] = (),
    ) -> None:
        self._engine = engine
        self._table = table
        self._key = key
        # The rows it inserted come back (ON CONFLICT DO NOTHING returns none for a key
        # already stored): a task learns whether its own write landed.
        self._stmt = insert_ignore(engine, table, key).returning(table.c[key], table.c.id)
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000
        self._retries = retries
        self._after_insert = tuple(after_insert)
        # Rows waiting for the next flush.  A timer (not a task per row) wakes the
        # flusher ``flush_ms`` after the first one; a full batch wakes it at once.
        self._pending: list[tuple[Row, asyncio.Future[int | None]]] = []
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.rows_written = 0
        self.batches_written = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"writer:{self._table.name}")

    async def write(self, row: Row) -> int | None:
        """Queue a row and wait until the transaction holding it committed.

        Returns the new row's ``id``, or None when a row with the same key was already
        stored (a redelivered task: nothing was written)."""
        if self._closed:
            raise WriterClosedError(f"writer for {self._table.name} is closed")
        self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int | None] = loop.create_future()
        self._pending.append((row, fut))
        if len(self._pending) >= self._batch_size:
            self._wake.set()
        elif self._timer is None:
            self._timer = loop.call_later(self._flush_s, self._wake.set)
        return await fut

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        self._closed = True
        if self._task is None:
            return
        self._wake.set()
        await self._task
        self._task = None

    def _take_batch(self) -> list[tuple[Row, asyncio.Future[int | None]]]:
        batch = self._pending[: self._batch_size]
        del self._pending[: self._batch_size]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(self._pending) >= self._batch_size or (self._pending and self._closed):
            self._wake.set()  # more than a batch was waiting: flush again at once
        elif self._pending:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._flush_s, self._wake.set)
        return batch

    async def _run(self) -> None:
        while self._pending or not self._closed:
            await self._wake.wait()
            self._wake.clear()
            batch = self._take_batch()
            if not batch:
                continue
            try:
                ids = await self._flush([row for row, _ in batch])
            except Exception as exc:  # every waiter learns why its row was not stored
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for row, fut in batch:
                    if not fut.done():
                        # A key twice in one batch: the first row is the one inserted.
                        fut.set_result(ids.pop(row.get(self._key), None))

    async def _flush(self, rows: list[Row]) -> dict[Any, int]:
        """Insert ``rows`` in one transaction; the ids of those inserted, by key."""
        if self._engine.dialect.name == "postgresql":
            # PostgreSQL text refuses NUL; probe errors and recorder replies come from outside.
            rows = [scrub_nul(row) for row in rows]
        # Keys inserted in one order by every writer: two batches holding the same keys
        # (a redelivered task stored by two workers) then wait for each other instead of
        # deadlocking on PostgreSQL's unique index.  The hooks still see batch order.
        ordered = sorted(rows, key=lambda row: str(row.get(self._key)))
        delay = 0.05
        for attempt in range(1, self._retries + 1):
            try:
                async with self._engine.begin() as conn:
                    inserted = (await conn.execute(self._stmt, ordered)).all()
                    actions = await self._run_hooks(conn, rows, {key for key, _ in inserted})
            except (DBAPIError, RetryBatch) as exc:
                reason = exc.orig if isinstance(exc, DBAPIError) else exc
                retryable = isinstance(exc, RetryBatch) or exc.connection_invalidated
                if attempt == self._retries or not (retryable or _transient(exc)):
                    log.error(
                        "batch insert failed table=%s rows=%d error=%s",
                        self._table.name,
                        len(rows),
                        reason,
                    )
                    raise
                log.warning(
                    "batch insert retry table=%s attempt=%d error=%s",
                    self._table.name,
                    attempt,
                    reason,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self.rows_written += len(inserted)
                self.batches_written += 1
                for action in actions:
                    try:
                        await action()
                    except Exception:  # the rows are stored; what failed is said here
                        log.exception("after-commit action failed table=%s", self._table.name)
                return {key: row_id for key, row_id in inserted}
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run_hooks(
        self, conn: AsyncConnection, rows: list[Row], inserted: set[Any]
    ) -> list[PostCommit]:
        if not self._after_insert or not inserted:
            return []
        landed: list[Row] = []
        for row in rows:  # a key twice in one batch: the first row is the one inserted
            key = row.get(self._key)
            if key in inserted:
                inserted.discard(key)
                landed.append(row)
        return await run_hooks(conn, self._after_insert, landed)


async def run_hooks(
    conn: AsyncConnection, hooks: Sequence[AfterInsert], rows: Sequence[Row]
) -> list[PostCommit]:
    """Each hook on ``rows`` in ``conn``'s transaction, in order; the actions they
    returned, to run once it committed."""
    actions = []
    for hook in hooks:
        action = await hook(conn, rows)
        if action is not None:
            actions.append(action)
    return actions


def scrub_nul(row: Row) -> Row:
    r"""The row with NUL characters removed from its text values (pure)::

    >>> scrub_nul({"error": "bad\x00byte", "n": 1})
    {'error': 'badbyte', 'n': 1}
    """
    return {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}


# PostgreSQL's "deadlock detected" and "could not serialize access": the transaction was
# chosen to give way and is to be run again (SQLSTATE class 40, transaction rollback).
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _transient(exc: DBAPIError | RetryBatch) -> bool:
    """Whether writing the batch again may succeed (a lock, a busy file, a lost
    connection, a deadlock victim)::

    >>> _transient(RetryBatch("database is locked")), _transient(RetryBatch("NOT NULL"))
    (True, False)
    """
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(reason, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    text = str(reason).lower()
    return any(s in text for s in ("locked", "busy", "connection", "timeout", "closed", "deadlock"))
