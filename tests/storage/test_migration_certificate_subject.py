"""Migration 0006 (``check_results.certificate_subject``) on a database at 0005 holding
results as the code before it wrote them (outcome, verdicts, a certificate's expiry):
every row is still there with its values, the old ones without a subject, and new
results store theirs; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import init_db, session_factory
from storage.migrate import alembic_config, schema_state
from storage.models import CheckResult
from storage.repo import list_checks
from storage.types import UTCDateTime
from storage.writer import BatchWriter

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2027, 3, 1, tzinfo=UTC)
VERDICTS = [{"condition": "[CERTIFICATE_EXPIRATION] > 72h", "success": True, "actual": "2160h"}]

# check_results as revision 0005 declared it: no certificate_subject.
OLD_RESULTS = Table(
    "check_results",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer),
    Column("status_up", Boolean),
    Column("latency_ms", Float),
    Column("checked_at", UTCDateTime),
    Column("run_key", String(200)),
    Column("slot_at", UTCDateTime),
    Column("status_code", Integer),
    Column("error_kind", String(40)),
    Column("error", String(500)),
    Column("source", String(20)),
    Column("outcome", String(10)),
    Column("verdicts", JSON),
    Column("degraded_verdicts", JSON),
    Column("certificate_expires_at", UTCDateTime),
    Column("in_maintenance", Boolean),
)


def _upgrade_to_0005(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0005_health_as_text")
    conn.commit()


def _old_result(n: int, up: bool) -> dict[str, Any]:
    slot = T0 + timedelta(minutes=n)
    return {
        "device_id": 1,
        "status_up": up,
        "latency_ms": 2.5,
        "checked_at": slot + timedelta(seconds=1),
        "run_key": f"probe:1:{n}",
        "slot_at": slot,
        "status_code": None,
        "error_kind": None if up else "tls",
        "error": None if up else "SSLError: handshake failure",
        "source": "schedule",
        "outcome": "up" if up else "down",
        "verdicts": VERDICTS if up else None,
        "degraded_verdicts": [],
        "certificate_expires_at": EXPIRES if up else None,
        "in_maintenance": False,
    }


async def _upgrade_keeps_results_and_stores_subjects(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_to_0005)
    old = [_old_result(0, True), _old_result(1, False)]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO devices (id, name, address, is_active, created_at, updated_at,"
                " failure_threshold, success_threshold, follow_redirects, verify_tls,"
                " reminder_every_minutes, public) VALUES (1, 'mail', 'tls://mail.local:993',"
                " true, :at, :at, 3, 1, true, true, 0, false)"
            ).bindparams(bindparam("at", type_=UTCDateTime)),
            {"at": T0},
        )
        await conn.execute(OLD_RESULTS.insert(), old)
    assert (await schema_state(engine)).current == ("0005_health_as_text",)

    await init_db(engine)
    state = await schema_state(engine)
    assert state.current == (state.head,)

    table = CheckResult.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(engine, table, "run_key", flush_ms=2)
    try:
        new = _old_result(2, True) | {"certificate_subject": "CN=mail.local,O=Example"}
        await writer.write(new)
    finally:
        await writer.close()
    async with session_factory(engine)() as session:
        rows = {r.run_key: r for r in await list_checks(session, 1, limit=10)}
    assert set(rows) == {"probe:1:0", "probe:1:1", "probe:1:2"}  # no row lost
    for before in old:
        row = rows[before["run_key"]]
        assert {name: getattr(row, name) for name in before} == before
        assert row.certificate_subject is None  # null on results stored before 0006
    assert rows["probe:1:2"].certificate_subject == "CN=mail.local,O=Example"
    assert rows["probe:1:2"].certificate_expires_at == EXPIRES


async def test_0006_keeps_every_result_of_0005_and_stores_subjects(
    blank_engine: AsyncEngine,
) -> None:
    await _upgrade_keeps_results_and_stores_subjects(blank_engine)
