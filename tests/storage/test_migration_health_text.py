"""Migration 0005 (``device_health.health`` JSON -> TEXT) on a database at 0004 holding the
health rows the code before it wrote (pydantic's dump in SQLAlchemy's JSON column): every
row keeps its document, the new code reads it as the same ``Health`` and goes on from it
(thresholds counted across the upgrade, revisions continued), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from pydantic import TypeAdapter
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.probe.conditions import Outcome
from jobs.probe.health import HealthTracker, decode_health
from jobs.probe.state import Health, Observation, State, Thresholds, step
from storage.db import init_db
from storage.migrate import alembic_config, schema_state
from storage.models import CheckResult
from storage.types import UTCDateTime
from storage.writer import BatchWriter

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

# device_health as revision 0004 declared it: the JSON column the old code wrote through.
OLD_HEALTH = Table(
    "device_health",
    MetaData(),
    Column("device_id", Integer, primary_key=True),
    Column("state", String(10)),
    Column("since", UTCDateTime),
    Column("revision", Integer),
    Column("health", JSON),
    Column("updated_at", UTCDateTime),
)


def _upgrade_to_0004(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0004")
    conn.commit()


def old_health(outcomes: str) -> Health:
    """The health after results ``outcomes`` ('u' up, 'd' down), one a minute from T0."""
    health = Health.new(T0)
    for n, o in enumerate(outcomes):
        outcome = Outcome.UP if o == "u" else Outcome.DOWN
        at = T0 + timedelta(minutes=n, microseconds=123)
        health, _ = step(health, Observation(outcome, at, f"probe:1:{n}"), Thresholds(2, 1))
    return health


# Device 1: up with a full window and one failure at its end (one more failure: down).
# Device 2: down. Device 3: no result yet.
HEALTHS = {1: old_health("u" * 20 + "d"), 2: old_health("uddd"), 3: Health.new(T0)}


async def _at_0004_with_rows(engine: AsyncEngine) -> dict[int, Any]:
    """A database at 0004 with three devices and the health rows the old code wrote."""
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_to_0004)
    old = TypeAdapter(Health)  # what jobs.probe.health stored before 0005
    documents = {i: old.dump_python(h, mode="json") for i, h in HEALTHS.items()}
    async with engine.begin() as conn:
        for i in HEALTHS:
            await conn.execute(
                text(
                    "INSERT INTO devices (id, name, address, is_active, created_at,"
                    " updated_at, failure_threshold, success_threshold, follow_redirects,"
                    " verify_tls, reminder_every_minutes, public)"
                    " VALUES (:id, :name, 'http://127.0.0.1:9/', true, :at, :at, 2, 1,"
                    " true, true, 0, false)"
                ).bindparams(bindparam("at", type_=UTCDateTime)),
                {"id": i, "name": f"d{i}", "at": T0},
            )
        await conn.execute(
            OLD_HEALTH.insert(),
            [
                {
                    "device_id": i,
                    "state": str(h.state),
                    "since": h.since,
                    "revision": h.revision,
                    "health": documents[i],
                    "updated_at": T0,
                }
                for i, h in HEALTHS.items()
            ],
        )
    return documents


def _check(device_id: int, n: int, up: bool) -> dict[str, Any]:
    slot = T0 + timedelta(minutes=n)
    return {
        "device_id": device_id,
        "status_up": up,
        "latency_ms": 1.0,
        "checked_at": slot + timedelta(seconds=1),
        "run_key": f"probe:{device_id}:{n}",
        "slot_at": slot,
        "status_code": 200 if up else 500,
        "error": None if up else "status 500",
        "source": "schedule",
        "outcome": "up" if up else "down",
    }


async def _upgrade_and_go_on(engine: AsyncEngine, documents: dict[int, Any]) -> None:
    assert (await schema_state(engine)).current == ("0004",)
    await init_db(engine)
    state = await schema_state(engine)
    assert state.current == (state.head,)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT device_id, state, revision, health FROM device_health"))
        ).all()
    assert len(rows) == 3  # no row lost
    for device_id, state_, revision, document in rows:
        assert isinstance(document, str)  # TEXT now, the document unchanged
        assert json.loads(document) == documents[device_id]
        assert decode_health(document) == HEALTHS[device_id]
        assert (state_, revision) == (str(HEALTHS[device_id].state), HEALTHS[device_id].revision)
    # The new code goes on from the stored windows: device 1's second failure in a row
    # (failure_threshold 2) makes it down, device 2 recovers, device 3 gets its first.
    tracker = HealthTracker()
    table = CheckResult.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(engine, table, "run_key", flush_ms=2, after_insert=[tracker.after_insert])
    try:
        await writer.write(_check(1, 21, False))
        await writer.write(_check(2, 4, True))
        await writer.write(_check(3, 0, True))
    finally:
        await writer.close()
    async with engine.connect() as conn:
        after = {
            r.device_id: (r.state, r.revision, decode_health(r.health))
            for r in (
                await conn.execute(
                    text("SELECT device_id, state, revision, health FROM device_health")
                )
            ).all()
        }
        changes = (
            await conn.execute(
                text(
                    "SELECT device_id, from_state, to_state, revision FROM state_changes"
                    " ORDER BY device_id"
                )
            )
        ).all()
    assert {i: (s, r) for i, (s, r, _) in after.items()} == {
        1: ("down", HEALTHS[1].revision + 1),
        2: ("up", HEALTHS[2].revision + 1),
        3: ("up", 1),
    }
    assert after[1][2].state is State.DOWN and after[1][2].consecutive_failures == 2
    assert [tuple(c) for c in changes] == [
        (1, "up", "down", HEALTHS[1].revision + 1),
        (2, "down", "up", HEALTHS[2].revision + 1),
        (3, "unknown", "up", 1),
    ]


async def test_0005_keeps_every_health_row_of_0004_and_goes_on_from_it(
    blank_engine: AsyncEngine,
) -> None:
    documents = await _at_0004_with_rows(blank_engine)
    await _upgrade_and_go_on(blank_engine, documents)
