"""The database as the rest of the code opens it: the engine and sessions
(``storage/engine.py``), every table registered, the schema brought to head
(``storage/migrate.py``)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage import alert_models, installation, recorder_models  # noqa: F401  (the other tables)
from storage.engine import make_engine, session_factory
from storage.migrate import INIT_LOCK_KEY, upgrade_to_head

__all__ = ["INIT_LOCK_KEY", "init_db", "make_engine", "session_factory"]

log = logging.getLogger(__name__)


async def init_db(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema revision through Alembic (idempotent; safe
    from several processes at once, one at a time under the schema lock: storage.migrate).

    Raises ``storage.migrate.SchemaError`` for a database this code must not use (newer
    than the code)."""
    await upgrade_to_head(engine)
