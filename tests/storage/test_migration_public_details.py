"""Migration 0007 (``devices.public_details``) on a database at 0006 holding devices and
results as the code before it wrote them (public and private, a failing last check):
every row is still there with its values, every old device shows no details (false), the
status page's query (``storage.public``) gives details only to a device that opts in, and
a new device stores the flag; on SQLite and PostgreSQL."""

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
    Text,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import init_db, session_factory
from storage.migrate import alembic_config, schema_state
from storage.models import Device
from storage.public import PublicDetails, public_devices
from storage.repo import create_device
from storage.types import UTCDateTime

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ERROR = "connection refused by db.internal"

# devices as revision 0006 declared it: no public_details.
OLD_DEVICES = Table(
    "devices",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(200)),
    Column("address", String(2048)),
    Column("is_active", Boolean),
    Column("interval_seconds", Integer),
    Column("timeout_seconds", Float),
    Column("conditions", JSON),
    Column("degraded_when", JSON),
    Column("failure_threshold", Integer),
    Column("success_threshold", Integer),
    Column("retry_interval_seconds", Integer),
    Column("method", String(10)),
    Column("headers", JSON),
    Column("body", Text),
    Column("follow_redirects", Boolean),
    Column("verify_tls", Boolean),
    Column("channel_ids", JSON),
    Column("notify_on", JSON),
    Column("reminder_every_minutes", Integer),
    Column("snoozed_until", UTCDateTime),
    Column("public", Boolean),
    Column("created_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
)

OLD_RESULTS = Table(
    "check_results",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer),
    Column("status_up", Boolean),
    Column("latency_ms", Float),
    Column("checked_at", UTCDateTime),
    Column("run_key", String(200)),
    Column("status_code", Integer),
    Column("error_kind", String(40)),
    Column("error", String(500)),
    Column("source", String(20)),
    Column("outcome", String(10)),
    Column("in_maintenance", Boolean),
)


def _old_device(device_id: int, name: str, public: bool) -> dict[str, Any]:
    return {
        "id": device_id,
        "name": name,
        "address": f"http://10.0.0.{device_id}:8080/health",
        "is_active": True,
        "interval_seconds": 60,
        "timeout_seconds": 2.5,
        "conditions": ["[STATUS] == 200"],
        "degraded_when": None,
        "failure_threshold": 3,
        "success_threshold": 1,
        "retry_interval_seconds": None,
        "method": "GET",
        "headers": {"X-Token": "t"},
        "body": None,
        "follow_redirects": True,
        "verify_tls": False,
        "channel_ids": None,
        "notify_on": ["down", "up"],
        "reminder_every_minutes": 0,
        "snoozed_until": None,
        "public": public,
        "created_at": T0,
        "updated_at": T0,
    }


def _failing_result(device_id: int) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "status_up": False,
        "latency_ms": 4.0,
        "checked_at": T0 + timedelta(minutes=device_id),
        "run_key": f"probe:{device_id}:0",
        "status_code": 503,
        "error_kind": "status",
        "error": ERROR,
        "source": "schedule",
        "outcome": "down",
        "in_maintenance": False,
    }


def _upgrade_to_0006(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0006_certificate_subject")
    conn.commit()


async def _upgrade_keeps_devices_and_adds_the_flag(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_to_0006)
    old = [_old_device(1, "api", True), _old_device(2, "db", True), _old_device(3, "lab", False)]
    async with engine.begin() as conn:
        for device in old:  # ids from the id sequence, as the old code's inserts took them
            fields = {k: v for k, v in device.items() if k != "id"}
            inserted = await conn.execute(OLD_DEVICES.insert().values(fields))
            assert inserted.inserted_primary_key == (device["id"],)
        await conn.execute(OLD_RESULTS.insert(), [_failing_result(d["id"]) for d in old])
    assert (await schema_state(engine)).current == ("0006_certificate_subject",)

    await init_db(engine)
    state = await schema_state(engine)
    assert state.current == (state.head,)

    devices = Device.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = {r.id: r._mapping for r in await conn.execute(select(devices))}
        assert set(rows) == {1, 2, 3}  # no device lost
        for before in old:
            row = rows[before["id"]]
            assert {name: row[name] for name in before} == before
            assert row["public_details"] is False  # the default of every old device
        # the status page's query: the public devices, no details from any of them
        shown = await public_devices(conn)
    expected = [("api", "down", None), ("db", "down", None)]
    assert [(d.name, d.state, d.details) for d in shown] == expected

    # one old public device and the private one opt in: only the public one shows them
    async with engine.begin() as conn:
        await conn.execute(
            update(devices).where(devices.c.id.in_([2, 3])).values(public_details=True)
        )
        shown = await public_devices(conn)
    details = {d.name: d.details for d in shown}
    assert details == {
        "api": None,
        "db": PublicDetails(
            address="http://10.0.0.2:8080/health",
            checked_at=T0 + timedelta(minutes=2),
            latency_ms=4.0,
            status_code=503,
            error=ERROR,
        ),
    }

    # a new device stores the flag
    async with session_factory(engine)() as session:
        new = await create_device(
            session, name="new", address="tcp://127.0.0.1:22", public=True, public_details=True
        )
        assert new.id is not None and new.id > 3
    async with session_factory(engine)() as session:
        stored = await session.get(Device, new.id)
        assert stored is not None and (stored.public, stored.public_details) == (True, True)


async def test_0007_keeps_every_device_of_0006_and_adds_public_details(
    blank_engine: AsyncEngine,
) -> None:
    await _upgrade_keeps_devices_and_adds_the_flag(blank_engine)
