"""Alembic's environment.

Two ways in: storage.migrate lends a connection that already holds the schema lock (every
process at start, ``python scheduler.py db upgrade``); ``alembic upgrade head`` from the
repository root (alembic.ini) opens ``DATABASE_URL`` through core.settings, with the same
engine set-up and the same lock.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from core.settings import Settings

# storage.db registers every table (the ones autogenerate compares against): a list of
# model modules here had already missed storage.alert_models.
from storage.db import make_engine
from storage.migrate import locked_connection

config = context.config
target_metadata = SQLModel.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters most things by copying the table: autogenerate writes batch ops.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """``alembic upgrade head --sql``: the DDL as text, for a DBA to run."""
    url = Settings().database_url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_cli() -> None:
    engine = make_engine(Settings())
    try:
        async with locked_connection(engine) as conn:
            await conn.run_sync(run_on)
    finally:
        await engine.dispose()


lent: Connection | None = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif lent is not None:
    run_on(lent)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(run_from_cli())
