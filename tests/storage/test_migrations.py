"""Schema migrations (storage.migrate, storage/migrations): a database made by create_all
before Alembic keeps every row and is stamped, an empty one is built by the migrations,
one newer than the code is refused, and processes starting together take turns.

The old schema is frozen as SQL text (tests/storage/fixtures/schema_before_alembic.*.sql, what
create_all emitted at the commit before Alembic), so later model changes cannot leak in.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from core.settings import Settings
from storage.db import init_db, make_engine, session_factory
from storage.installation import installation_id
from storage.migrate import BASELINE, DatabaseNewerError, schema_state, upgrade_to_head
from storage.recorder_repo import get_command, list_schedules
from storage.repo import list_checks, list_devices
from tests.conftest import subprocess_env
from tests.processes import ROOT
from tests.storage.test_postgres import empty_database
from tests.webapp import served

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2025, 10, 15, 8, 55, 0, 123456, tzinfo=UTC)

# Real rows of every table of the old schema, as the code of that commit wrote them.
LEGACY_ROWS: dict[str, list[dict[str, Any]]] = {
    "devices": [
        {"id": 1, "name": "router", "address": "http://10.0.0.1/", "is_active": True,
         "interval_seconds": 60, "timeout_seconds": 2.5, "created_at": AT, "updated_at": AT},
        {"id": 7, "name": "old", "address": "https://example.org/", "is_active": False,
         "interval_seconds": None, "timeout_seconds": None, "created_at": AT, "updated_at": AT},
    ],
    "check_results": [
        {"id": 1, "device_id": 1, "status_up": True, "latency_ms": 12.5, "checked_at": AT,
         "run_key": "probe:1:2025-10-15T08:55:00Z", "slot_at": AT, "status_code": 200,
         "error_kind": None, "error": None, "source": "schedule"},
        {"id": 2, "device_id": 1, "status_up": False, "latency_ms": None, "checked_at": AT,
         "run_key": "manual:1:abc", "slot_at": None, "status_code": None,
         "error_kind": "timeout", "error": "timed out after 2.5s", "source": "manual"},
    ],
    "recorder_commands": [
        {"id": 1, "task_id": "task01", "cmd": "start",
         "payload": {"segment_time": 300.0, "snd_source": "pulsesrc01"},
         "msg_status": "success", "app_status": "started",
         "reply_payload": {"file_path": "/mnt/rec001.wav", "at_started": "2025-10-15T08:55:00Z"},
         "reason": None, "latency_ms": 3.0, "error_kind": None, "error": None,
         "created_at": AT, "run_key": "recorder:api:1", "source": "api", "schedule_id": None,
         "slot_at": None, "attempt_id": "a" * 32},
    ],
    "recorder_schedules": [
        {"id": 3, "task_id": "task01", "cmd": "status", "payload": None, "cron": "*/5 * * * *",
         "interval_seconds": None, "is_active": True, "created_at": AT, "updated_at": AT},
    ],
}  # fmt: skip


def legacy_statements(dialect: str) -> list[str]:
    sql = (FIXTURES / f"schema_before_alembic.{dialect}.sql").read_text()
    lines = [line for line in sql.splitlines() if not line.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _fill_legacy(conn: Connection) -> None:
    for statement in legacy_statements(conn.dialect.name):
        conn.exec_driver_sql(statement)
    tables = MetaData()
    tables.reflect(conn)  # the old tables as they are, not today's models
    for name, rows in LEGACY_ROWS.items():
        values = rows
        if conn.dialect.name == "sqlite":  # create_all's SQLite columns hold naive UTC
            values = [
                {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in r.items()}
                for r in rows
            ]
        conn.execute(tables.tables[name].insert(), values)
        if conn.dialect.name == "postgresql":  # as if the rows had come through SERIAL
            conn.exec_driver_sql(f"SELECT setval('{name}_id_seq', (SELECT max(id) FROM {name}))")


async def make_legacy(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_fill_legacy)


def _head_matches_models(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))


async def table_counts(engine: AsyncEngine) -> dict[str, int]:
    tables = MetaData()
    async with engine.connect() as conn:
        await conn.run_sync(tables.reflect)
        return {
            name: (
                await conn.execute(select(func.count()).select_from(tables.tables[name]))
            ).scalar_one()
            for name in LEGACY_ROWS
        }


async def assert_legacy_rows_read_back(engine: AsyncEngine) -> None:
    """Every legacy row is there and the app's own queries read it, values intact."""
    assert await table_counts(engine) == {name: len(rows) for name, rows in LEGACY_ROWS.items()}
    async with session_factory(engine)() as session:
        devices = await list_devices(session)
        assert [(d.id, d.name, d.is_active, d.interval_seconds) for d in devices] == [
            (1, "router", True, 60),
            (7, "old", False, None),
        ]
        assert devices[0].created_at == AT
        checks = await list_checks(session, 1, limit=10)
        assert {c.run_key for c in checks} == {r["run_key"] for r in LEGACY_ROWS["check_results"]}
        by_key = {c.run_key: c for c in checks}
        assert by_key["probe:1:2025-10-15T08:55:00Z"].slot_at == AT
        assert by_key["manual:1:abc"].error == "timed out after 2.5s"
        command = await get_command(session, "recorder:api:1")
        assert command is not None
        assert command.reply_payload == {
            "file_path": "/mnt/rec001.wav",
            "at_started": "2025-10-15T08:55:00Z",
        }
        schedules = await list_schedules(session)
        assert [(s.id, s.cron) for s in schedules] == [(3, "*/5 * * * *")]
        # Revision 0003 (health): old devices take the defaults, old results no outcome.
        router = devices[0]
        assert (router.failure_threshold, router.success_threshold) == (3, 1)
        assert (router.follow_redirects, router.verify_tls, router.public) == (True, True, False)
        assert (router.conditions, router.reminder_every_minutes) == (None, 0)
        old = by_key["manual:1:abc"]
        assert (old.outcome, old.verdicts, old.in_maintenance) == (None, None, False)
        # Revision 0006 (certificate_subject): null on old results.
        assert old.certificate_subject is None
        # Revision 0007 (public_details): old devices show no details.
        assert router.public_details is False
    # New rows still get fresh ids after the old ones (the id sequences came along).
    async with session_factory(engine)() as session:
        from storage.repo import create_device

        device = await create_device(session, name="new", address="http://127.0.0.1/")
        assert device.id is not None and device.id > 7


async def revisions(engine: AsyncEngine) -> tuple[str, ...]:
    return (await schema_state(engine)).current


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(Settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"))  # type: ignore[call-arg]
    yield engine
    await engine.dispose()


async def test_a_database_made_before_alembic_keeps_every_row_and_is_stamped(
    settings: Settings,
) -> None:
    engine = make_engine(settings)
    try:
        await make_legacy(engine)
        state = await schema_state(engine)
        assert state.legacy and state.current == ()
        await init_db(engine)
        assert await revisions(engine) == (state.head,)
        await assert_legacy_rows_read_back(engine)
        # Migration 0002 gave the upgraded database its installation id (one row, a UUID).
        assert uuid.UUID(await installation_id(engine))
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT count(*) FROM installation")
            assert rows.scalar_one() == 1
        # And the REST API serves them.
        async with served(settings, engine) as web:
            devices = (await web.client.get("/devices")).json()
            assert [d["name"] for d in devices][:2] == ["router", "old"]
            checks = (await web.client.get("/devices/1/checks", params={"limit": 10})).json()
            assert len(checks) == 2
    finally:
        await engine.dispose()


async def test_a_database_made_before_alembic_is_stamped_not_created_again(
    sqlite_engine: AsyncEngine,
) -> None:
    await make_legacy(sqlite_engine)
    async with sqlite_engine.connect() as conn:
        before = (
            await conn.exec_driver_sql(
                "SELECT name, rootpage, sql FROM sqlite_master ORDER BY name"
            )
        ).all()
    await init_db(sqlite_engine)
    async with sqlite_engine.connect() as conn:
        after = (
            await conn.exec_driver_sql(
                "SELECT name, rootpage, sql FROM sqlite_master ORDER BY name"
            )
        ).all()
    # The old tables and indexes not re-created: same pages.  (Their DDL text may grow:
    # later revisions add columns with ALTER TABLE, which SQLite writes into it.)
    # (SQLAlchemy 2.1 types exec_driver_sql's rows as one column: CursorResult[Any].)
    pages_before = {(name, page) for name, page, _sql in before}  # type: ignore[misc]
    pages_after = {(name, page) for name, page, _sql in after}  # type: ignore[misc]
    assert len(before) == 10 and pages_before <= pages_after  # 4 tables, 6 indexes


async def test_a_database_with_only_some_old_tables_gets_the_missing_ones(
    sqlite_engine: AsyncEngine,
) -> None:
    """A database last opened by a version that had no recorder tables yet."""
    async with sqlite_engine.begin() as conn:
        for statement in legacy_statements("sqlite"):
            if "recorder_" not in statement:
                await conn.exec_driver_sql(statement)
        await conn.exec_driver_sql(
            "INSERT INTO devices (name, address, is_active, created_at, updated_at)"
            " VALUES ('a', 'http://x/', 1, '2025-10-15 08:55:00', '2025-10-15 08:55:00')"
        )
    await init_db(sqlite_engine)
    async with sqlite_engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        count = (await conn.exec_driver_sql("SELECT count(*) FROM devices")).scalar_one()
    assert set(LEGACY_ROWS) <= names
    assert count == 1


async def test_an_empty_database_is_built_by_the_migrations_as_the_models_say(
    sqlite_engine: AsyncEngine,
) -> None:
    await init_db(sqlite_engine)
    state = await schema_state(sqlite_engine)
    assert state.current == (state.head,) and not state.legacy
    async with sqlite_engine.connect() as conn:
        assert await conn.run_sync(_head_matches_models) == []
    await init_db(sqlite_engine)  # again: nothing to do, nothing fails
    assert await revisions(sqlite_engine) == (state.head,)


async def test_the_baseline_is_what_create_all_made(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.connect() as conn:
        await conn.run_sync(upgrade_baseline_only)
        made = (
            await conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"
                " AND tbl_name != 'alembic_version' ORDER BY name"
            )
        ).all()
    frozen = sorted(legacy_statements("sqlite"))
    assert sorted(row[0] for row in made) == frozen


def upgrade_baseline_only(conn: Connection) -> None:
    from alembic import command

    from storage.migrate import alembic_config

    command.upgrade(alembic_config(conn), BASELINE)
    conn.commit()


async def test_a_database_newer_than_the_code_is_refused(sqlite_engine: AsyncEngine) -> None:
    await init_db(sqlite_engine)
    async with sqlite_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff0009'"))
    with pytest.raises(DatabaseNewerError, match=r"revision ffff0009.*newer fleetprobe"):
        await init_db(sqlite_engine)
    with pytest.raises(DatabaseNewerError):
        await schema_state(sqlite_engine)
    assert await table_counts(sqlite_engine) == dict.fromkeys(LEGACY_ROWS, 0)  # untouched


@pytest.mark.slow
def test_scheduler_refuses_a_newer_database_in_one_line_without_traceback(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    env = subprocess_env(
        {"DATABASE_URL": url, "EMBEDDED_NATS": "false", "NATS_URL": "nats://127.0.0.1:1"}
    )
    db = [sys.executable, str(ROOT / "scheduler.py"), "db"]
    assert (
        subprocess.run(
            [*db, "upgrade"], env=env, capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )
    import sqlite3

    with sqlite3.connect(tmp_path / "new.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff0009'")
    for args in (
        [*db, "current"],
        [*db, "upgrade"],
        [sys.executable, str(ROOT / "scheduler.py"), "--no-web"],
    ):
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 3, output
        assert "Traceback" not in output
        refusals = [line for line in output.splitlines() if "ffff0009" in line]
        assert len(refusals) == 1 and "newer fleetprobe" in refusals[0], output  # fmt: skip


@pytest.mark.parametrize("round_", range(5))
async def test_tasks_starting_together_on_a_new_file_upgrade_it_once(
    tmp_path: Path, round_: int
) -> None:
    # Eight connections opening a new file at once: switching it to WAL used to fail one
    # of them with "database is locked" now and then (storage.engine._wal).
    settings = Settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'race.db'}")  # type: ignore[call-arg]
    engines = [make_engine(settings) for _ in range(8)]
    try:
        states = await asyncio.gather(*(upgrade_to_head(e) for e in engines))
        assert {s.current for s in states} == {(states[0].head,)}
        async with engines[0].connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        assert rows == [(states[0].head,)] and mode == "wal"
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.slow
def test_processes_starting_together_on_a_new_file_all_succeed(tmp_path: Path) -> None:
    env = subprocess_env({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"})
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "scheduler.py"), "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert sum("upgraded from=empty" in out for out in outputs) == 1, outputs
    assert all("up to date" in out for out in outputs), outputs


# PostgreSQL (skipped with a reason when 5432 does not answer; a failure under CI=true).


@pytest.mark.postgres
async def test_postgres_database_made_before_alembic_keeps_every_row() -> None:
    async with empty_database() as url:
        engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await make_legacy(engine)
            assert (await schema_state(engine)).legacy
            await init_db(engine)
            await assert_legacy_rows_read_back(engine)
            async with engine.connect() as conn:
                assert await conn.run_sync(_head_matches_models) == []
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_postgres_empty_database_is_built_as_the_models_say_and_newer_is_refused() -> None:
    async with empty_database() as url:
        engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await init_db(engine)
            async with engine.connect() as conn:
                assert await conn.run_sync(_head_matches_models) == []
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff0009'"))
            with pytest.raises(DatabaseNewerError, match="ffff0009"):
                await init_db(engine)
        finally:
            await engine.dispose()
