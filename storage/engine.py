"""The async engine: SQLite (WAL, busy timeout, SQLITE_SYNCHRONOUS) by default, PostgreSQL
for many hosts; and the session factory over it."""

from __future__ import annotations

import contextlib
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
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy)}")
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
