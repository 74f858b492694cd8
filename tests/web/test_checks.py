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
    assert check["latency_ms"] == 12.5 and check["source"] == "entered"
    assert check["run_key"].startswith("entered:")
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


async def test_history_pages_with_offset_and_reads_a_time_range(web: WebApp) -> None:
    device_id = await new_device(web)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes in range(1, 7):
        at = (base + timedelta(minutes=minutes)).isoformat()
        assert (
            await web.client.post(
                f"/devices/{device_id}/checks", json={"status_up": True, "checked_at": at}
            )
        ).is_success
    path = f"/devices/{device_id}/checks"

    async def minutes_of(**params: Any) -> list[int]:
        r = await web.client.get(path, params=params)
        assert r.status_code == 200, r.text
        return [datetime.fromisoformat(c["checked_at"]).minute for c in r.json()]

    assert await minutes_of() == [6, 5, 4, 3, 2, 1]
    assert await minutes_of(limit=2, offset=0) == [6, 5]
    assert await minutes_of(limit=2, offset=2) == [4, 3]
    assert await minutes_of(limit=2, offset=6) == []
    # since is inclusive, until exclusive; a zone other than UTC is converted
    assert await minutes_of(since="2026-01-01T00:02:00Z", until="2026-01-01T00:05:00Z") == [
        4,
        3,
        2,
    ]
    assert await minutes_of(since="2026-01-01T01:04:00+01:00") == [6, 5, 4]
    assert await minutes_of(until="2026-01-01T00:03:00Z", limit=1) == [2]
    # unknown query parameters (a cache-buster) are ignored
    assert await minutes_of(_="1700000000", limit=1) == [6]


async def test_history_refuses_a_range_that_ends_before_it_starts_or_has_no_zone(
    web: WebApp,
) -> None:
    device_id = await new_device(web)
    path = f"/devices/{device_id}/checks"
    r = await web.client.get(
        path, params={"since": "2026-01-01T00:05:00Z", "until": "2026-01-01T00:05:00Z"}
    )
    assert r.status_code == 422
    assert [i["loc"] for i in r.json()["detail"]] == [["query", "until"]]
    r = await web.client.get(path, params={"since": "2026-01-01T00:05:00"})
    assert r.status_code == 422
    assert [i["loc"] for i in r.json()["detail"]] == [["query", "since"]]
    r = await web.client.get(path, params={"limit": 1001})
    assert r.status_code == 422 and "1000" in r.json()["detail"][0]["msg"]


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


async def test_a_manual_check_has_its_outcome_from_status_up_and_no_verdicts(
    web: WebApp,
) -> None:
    device_id = await new_device(web)
    r = await web.client.post(f"/devices/{device_id}/checks", json={"status_up": False})
    check = r.json()
    assert (check["outcome"], check["verdicts"], check["degraded_verdicts"]) == (
        "down",
        None,
        None,
    )
    assert check["certificate_expires_at"] is None and check["error_kind"] is None
    assert check["certificate_subject"] is None


async def test_an_old_row_without_outcome_reads_its_outcome_from_status_up(
    web: WebApp, settings: Settings
) -> None:
    device_id = await new_device(web)
    path = settings.database_url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for key, up in (("old:up", 1), ("old:down", 0)):
            conn.execute(
                "INSERT INTO check_results (device_id, status_up, checked_at, run_key, source,"
                " in_maintenance) VALUES (?, ?, '2026-01-01 00:00:00', ?, 'schedule', 0)",
                (device_id, up, key),
            )
    checks = (await web.client.get(f"/devices/{device_id}/checks")).json()
    assert {c["run_key"]: c["outcome"] for c in checks} == {"old:up": "up", "old:down": "down"}


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
