"""Schema migrations (Alembic, storage/migrations): every process brings its database to
head at start (``storage.db.init_db``); ``python scheduler.py db upgrade`` and
``db current`` do it by hand.

One process at a time: the "which revision is it at?" check and the upgrade run in one
transaction that holds the schema lock, so whoever comes second finds the work done.  On
PostgreSQL the lock is a transaction-scoped advisory lock (``INIT_LOCK_KEY``); on SQLite
the transaction starts with ``BEGIN IMMEDIATE``, the file's write lock, which the others
wait for through ``busy_timeout``.  Both run DDL inside the transaction: a failed
migration leaves the database as it was.

A database made by ``create_all`` before Alembic (fleetprobe's tables, no
``alembic_version``) is the baseline: it is stamped, not re-created.

Errors::

    SchemaError                 the database's schema cannot be used by this code
    ├── DatabaseNewerError      at a revision this code does not know (a newer fleetprobe)
    └── LegacySchemaError       tables made before Alembic lack columns of the baseline
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.settings import Settings
from storage.engine import make_engine

log = logging.getLogger(__name__)
# Alembic's INFO lines come per context and plugin and span lines (a whole docstring);
# upgrade_to_head logs what changed in one line of its own.
logging.getLogger("alembic").setLevel(logging.WARNING)

# Key of the PostgreSQL advisory lock that serialises schema changes across hosts.
INIT_LOCK_KEY = 0x666C_7072_6F62  # "flprob"

# The revision that is the schema create_all made, and that schema's tables and columns
# (frozen: a database without alembic_version is checked against it before stamping).
BASELINE = "0001"
# fmt: off
BASELINE_TABLES: dict[str, frozenset[str]] = {
    "devices": frozenset([
        "id", "name", "address", "is_active", "interval_seconds", "timeout_seconds",
        "created_at", "updated_at",
    ]),
    "check_results": frozenset([
        "id", "device_id", "status_up", "latency_ms", "checked_at", "run_key", "slot_at",
        "status_code", "error_kind", "error", "source",
    ]),
    "recorder_commands": frozenset([
        "id", "task_id", "cmd", "payload", "msg_status", "app_status", "reply_payload",
        "reason", "latency_ms", "error_kind", "error", "created_at", "run_key", "source",
        "schedule_id", "slot_at", "attempt_id",
    ]),
    "recorder_schedules": frozenset([
        "id", "task_id", "cmd", "payload", "cron", "interval_seconds", "is_active",
        "created_at", "updated_at",
    ]),
}
# fmt: on


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this code; the process must not start."""


class DatabaseNewerError(SchemaError):
    """The database is at a revision this code does not know."""


class LegacySchemaError(SchemaError):
    """Tables made before Alembic are not the baseline schema."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revisions (empty: none recorded) and the code's head."""

    current: tuple[str, ...]
    head: str
    legacy: bool = False  # fleetprobe tables without alembic_version

    def describe(self) -> str:
        if self.legacy:
            now = "none (tables made before Alembic: stamped as the baseline on upgrade)"
        elif not self.current:
            now = "none (empty database)"
        else:
            now = ",".join(self.current)
        status = "up to date" if self.current == (self.head,) else "upgrade needed"
        return f"current={now} head={self.head} {status}"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for the packaged migrations; ``connection`` is lent to env.py."""
    config = Config()
    config.set_main_option("script_location", "storage:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextlib.asynccontextmanager
async def locked_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside one transaction that holds the schema lock; committed when the
    block ends, rolled back when it raises."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite would begin lazily (a DEFERRED transaction, read lock first): take
            # the write lock now, so two processes cannot both see "no tables".
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INIT_LOCK_KEY})
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


def _state(conn: Connection) -> SchemaState:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None  # the package ships at least the baseline
    current = tuple(MigrationContext.configure(conn).get_current_heads())
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            raise DatabaseNewerError(
                f"the database is at schema revision {revision}, which this fleetprobe does "
                f"not know (its newest is {head}): a newer fleetprobe upgraded it. Run that "
                "version, or restore a backup of the database taken before the upgrade."
            ) from None
    legacy = not current and bool(set(inspect(conn).get_table_names()) & BASELINE_TABLES.keys())
    return SchemaState(current=current, head=head, legacy=legacy)


def _check_legacy(conn: Connection) -> None:
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    lacking = []
    for table, columns in BASELINE_TABLES.items():
        if table in present:
            have = {c["name"] for c in inspector.get_columns(table)}
            lacking += [f"{table}.{name}" for name in sorted(columns - have)]
    if lacking:
        raise LegacySchemaError(
            f"the database has fleetprobe tables but no schema revision, and lacks "
            f"{', '.join(lacking)}: it was not made by fleetprobe's create_all. Point "
            "DATABASE_URL at another database, or repair these tables by hand."
        )


def _upgrade(conn: Connection) -> tuple[SchemaState, SchemaState]:
    before = _state(conn)
    config = alembic_config(conn)
    if before.legacy:
        _check_legacy(conn)
        # Tables a shorter create_all did not make are created by the baseline itself
        # (if_not_exists); the others stay as they are.
        missing = BASELINE_TABLES.keys() - set(inspect(conn).get_table_names())
        if missing:
            command.upgrade(config, BASELINE)
        else:
            command.stamp(config, BASELINE)
        log.info("database made before Alembic adopted as revision=%s", BASELINE)
    command.upgrade(config, "head")
    return before, _state(conn)


async def upgrade_to_head(engine: AsyncEngine) -> SchemaState:
    """Bring the database to the newest revision (idempotent; any number of processes at
    once).  Raises a :class:`SchemaError` for a database this code must not touch."""
    async with locked_connection(engine) as conn:
        before, after = await conn.run_sync(_upgrade)
    url = engine.url.render_as_string(hide_password=True)
    if before.current != after.current:
        log.info(
            "database schema upgraded from=%s to=%s url=%s",
            ",".join(before.current) or ("legacy" if before.legacy else "empty"),
            after.head,
            url,
        )
    log.info("database ready url=%s revision=%s", url, after.head)
    return after


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        return await conn.run_sync(_state)


async def _run_command(action: str, settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        if action == "upgrade":
            state = await upgrade_to_head(engine)
        else:
            state = await schema_state(engine)
        print(state.describe())
        return 0
    finally:
        await engine.dispose()


def main(argv: Sequence[str]) -> int:
    """``python scheduler.py db upgrade|current``."""
    parser = argparse.ArgumentParser(
        prog="scheduler.py db",
        description="The database schema (DATABASE_URL): 'upgrade' brings it to the newest "
        "revision (what every process also does at start), 'current' shows where it stands.",
    )
    parser.add_argument("action", choices=["upgrade", "current"])
    args = parser.parse_args(argv)
    from core.logs import setup_logging

    try:
        settings = Settings()
    except Exception as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        return asyncio.run(_run_command(args.action, settings))
    except SchemaError as exc:
        print(f"refusing: {exc}", file=sys.stderr)
        return 3
