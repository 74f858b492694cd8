"""``/devices/{id}/checks``: history newest first, and results recorded by hand."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage.db import session_factory
from storage.repo import count_checks
from tests.helpers import collect_events, wait_for
from tests.webapp import WebApp

DEVICE = {"name": "edge", "address": "http://127.0.0.1:9/"}


async def new_device(web: WebApp) -> int:
    device_id: int = (await web.client.post("/devices", json=DEVICE)).json()["id"]
    return device_id


async def stored(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return await count_checks(session)


async def test_a_manual_check_is_stored_listed_and_announced(
    web: WebApp, settings: Settings
) -> None:
    device_id = await new_device(web)
    async with collect_events(settings) as events:
        r = await web.client.post(
            f"/devices/{device_id}/checks",
            json={"status_up": True, "latency_ms": 12.5, "status_code": 200},
        )
        assert r.status_code == 201
        check = r.json()

        async def announced() -> bool:
            return any(e["type"] == "check.created" for e in events)

        await wait_for(announced, what="check.created")
    assert check["device_id"] == device_id and check["status_up"] is True
    assert check["latency_ms"] == 12.5 and check["source"] == "manual"
    assert check["run_key"].startswith("manual:")
    [event] = [e for e in events if e["type"] == "check.created"]
    assert event["payload"]["device_id"] == device_id
    assert event["payload"]["status_up"] is True and event["payload"]["latency_ms"] == 12.5
    assert (await web.client.get(f"/devices/{device_id}/checks")).json() == [check]


async def test_history_is_newest_first_and_limited(web: WebApp) -> None:
    device_id = await new_device(web)
    other = await new_device(web)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes in (5, 1, 3, 2, 4):
        at = (base + timedelta(minutes=minutes)).isoformat()
        body = {"status_up": minutes % 2 == 0, "checked_at": at}
        assert (await web.client.post(f"/devices/{device_id}/checks", json=body)).is_success
    await web.client.post(f"/devices/{other}/checks", json={"status_up": True})

    rows = (await web.client.get(f"/devices/{device_id}/checks")).json()
    assert [r["checked_at"] for r in rows] == [
        (base + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (5, 4, 3, 2, 1)
    ]
    limited = (await web.client.get(f"/devices/{device_id}/checks", params={"limit": 2})).json()
    assert limited == rows[:2]


async def test_deleting_a_device_deletes_its_history(web: WebApp, engine: AsyncEngine) -> None:
    device_id = await new_device(web)
    await web.client.post(f"/devices/{device_id}/checks", json={"status_up": False})
    assert await stored(engine) == 1
    await web.client.delete(f"/devices/{device_id}")
    assert await stored(engine) == 0
    assert (await web.client.get(f"/devices/{device_id}/checks")).status_code == 404


async def test_a_device_deleted_just_before_the_check_is_written_leaves_no_orphan(
    web: WebApp, engine: AsyncEngine, settings: Settings
) -> None:
    """Another client deletes the device at the last moment: after the handler saw the
    device, right before the check row is written.  The answer is a 404 and no check is
    left without its device (check_results.device_id has no foreign key to catch it)."""
    device_id = await new_device(web)
    database = settings.database_url.split("///", 1)[1]
    deleted: list[int] = []

    def delete_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if deleted or not statement.lstrip().upper().startswith("INSERT INTO CHECK_RESULTS"):
            return
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as other, other:
            other.execute("DELETE FROM check_results WHERE device_id = ?", (device_id,))
            other.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        deleted.append(device_id)

    event.listen(engine.sync_engine, "before_cursor_execute", delete_first)
    try:
        r = await web.client.post(f"/devices/{device_id}/checks", json={"status_up": True})
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", delete_first)
    assert deleted == [device_id]
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert await stored(engine) == 0


async def test_checks_of_an_unknown_device_are_a_404(web: WebApp, engine: AsyncEngine) -> None:
    assert (await web.client.get("/devices/404/checks")).status_code == 404
    r = await web.client.post("/devices/404/checks", json={"status_up": True})
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert await stored(engine) == 0


async def test_since_keeps_the_checks_at_or_after_it(web: WebApp) -> None:
    device_id = await new_device(web)
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for minutes in (0, 10, 20, 30):
        at = (base + timedelta(minutes=minutes)).isoformat()
        r = await web.client.post(
            f"/devices/{device_id}/checks", json={"status_up": True, "checked_at": at}
        )
        assert r.status_code == 201
    since = (base + timedelta(minutes=10)).isoformat()
    r = await web.client.get(f"/devices/{device_id}/checks", params={"since": since, "limit": 2})
    assert [c["checked_at"] for c in r.json()] == [
        "2026-03-01T12:30:00Z",
        "2026-03-01T12:20:00Z",
    ]
    r = await web.client.get(f"/devices/{device_id}/checks", params={"since": since})
    assert len(r.json()) == 3
    for bad in ("yesterday", "0.5", "1767225600", "2026-03-01"):
        r = await web.client.get(f"/devices/{device_id}/checks", params={"since": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"], bad
    naive = await web.client.get(
        f"/devices/{device_id}/checks", params={"since": "2026-03-01T12:00:00"}
    )
    assert naive.status_code == 422
    # a time with no UTC value is a 422 naming the field, not a 500 at the database
    for where in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
        r = await web.client.get(f"/devices/{device_id}/checks", params={"since": where})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
        r = await web.client.post(
            f"/devices/{device_id}/checks", json={"status_up": True, "checked_at": where}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "checked_at"]
