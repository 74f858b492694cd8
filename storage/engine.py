"""The async engine: SQLite (WAL, busy timeout, SQLITE_SYNCHRONOUS) by default, PostgreSQL
for many hosts; and the session factory over it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings


def _wal(cur: Any, tries: int = 50) -> None:
    """Put the file in WAL mode (it stays so: a file already in WAL is left as it is).
    Switching needs the file to itself, and SQLite answers "database is locked" at once
    rather than through the busy timeout when other connections open a new file at the
    same moment (four processes starting together): the switch is tried again, briefly."""
    cur.execute("PRAGMA journal_mode")
    if str(cur.fetchone()[0]).lower() == "wal":
        return
    for attempt in range(tries):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, through the adapter
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.02)  # at connect, only on a file not yet in WAL


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    kwargs: dict[str, Any] = {}
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 10
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if settings.is_sqlite:
        busy = settings.sqlite_busy_timeout_ms
        synchronous = {"normal": "NORMAL", "full": "FULL"}[settings.sqlite_synchronous]

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers never block the writer; busy_timeout: writers from other
            # processes wait instead of failing with "database is locked"; synchronous
            # (SQLITE_SYNCHRONOUS): FULL fsyncs the WAL at each commit, so an acknowledged
            # result survives a power loss, NORMAL only a process crash.
            cur.execute(f"PRAGMA busy_timeout={int(busy)}")
            _wal(cur)
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@contextlib.asynccontextmanager
async def connected(bind: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """``bind`` itself when it is a connection (several reads on one), else a connection
    of the engine for the block."""
    if isinstance(bind, AsyncConnection):
        yield bind
        return
    async with bind.connect() as conn:
        yield conn
