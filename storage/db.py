"""The async engine: SQLite (WAL, busy timeout) by default, PostgreSQL for many hosts."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from core.settings import Settings
from storage import alert_models, installation, recorder_models  # noqa: F401  (the other tables)
from storage.migrate import INIT_LOCK_KEY, upgrade_to_head

__all__ = ["INIT_LOCK_KEY", "init_db", "make_engine", "session_factory"]

log = logging.getLogger(__name__)


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


async def init_db(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema revision through Alembic (idempotent; safe
    from several processes at once, one at a time under the schema lock: storage.migrate).

    Raises ``storage.migrate.SchemaError`` for a database this code must not use (newer
    than the code)."""
    await upgrade_to_head(engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
