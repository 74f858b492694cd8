"""``GET /devices/{id}/uptime`` and ``GET /status`` through the real server and SQLite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from storage.models import DeviceHealth
from storage.types import utcnow
from tests.web.history import add_changes, counted_statements
from tests.webapp import WebApp

ADDRESS = "http://127.0.0.1:9/"


async def new_device(web: WebApp, name: str) -> int:
    r = await web.client.post("/devices", json={"name": name, "address": ADDRESS})
    assert r.status_code == 201
    device_id: int = r.json()["id"]
    return device_id


async def manual_check(web: WebApp, device_id: int, ago: timedelta, **fields: Any) -> None:
    body = {"checked_at": (utcnow() - ago).isoformat()} | fields
    r = await web.client.post(f"/devices/{device_id}/checks", json=body)
    assert r.status_code == 201, r.text


async def test_uptime_per_window_from_state_changes_and_rollups(
    web: WebApp, engine: AsyncEngine
) -> None:
    device_id = await new_device(web, "edge")
    hours = timedelta(hours=1)
    await add_changes(
        engine,
        device_id,
        ("unknown", "up", 10 * 24 * hours),
        ("up", "down", 48 * hours),
        ("down", "degraded", 36 * hours),  # down for 12 hours, two days ago
        ("degraded", "up", 30 * hours),
    )
    for ago, latency, up in ((2, 20.0, True), (3, 40.0, True), (40, 900.0, False)):
        await manual_check(web, device_id, ago * hours, status_up=up, latency_ms=latency)
    r = await web.client.get(f"/devices/{device_id}/uptime")
    assert r.status_code == 200
    body = r.json()
    assert body["device_id"] == device_id and body["at"]
    day, week, month = body["windows"]
    assert [w["window"] for w in body["windows"]] == ["24h", "7d", "30d"]
    assert day == {
        "window": "24h",
        "uptime_percent": 100.0,
        "degraded_percent": 0.0,
        "down_percent": 0.0,
        "unknown_seconds": 0.0,
        "paused_seconds": 0.0,
        "maintenance_seconds": 0.0,
        "checks": 2,
        "latency_p50_ms": 25.0,  # two in (25, 50] and (10, 25]: halfway up the first
        "latency_p95_ms": day["latency_p95_ms"],
        "latency_max_ms": 40.0,
    }
    assert 25.0 < day["latency_p95_ms"] <= 40.0
    assert week["checks"] == 3 and week["latency_max_ms"] == 900.0
    assert abs(week["down_percent"] - 12 / (7 * 24) * 100) < 0.01
    assert abs(week["degraded_percent"] - 6 / (7 * 24) * 100) < 0.01
    assert abs(week["uptime_percent"] + week["down_percent"] - 100) < 0.001
    assert abs(month["unknown_seconds"] - 20 * 86400) < 5  # before the first change
    assert abs(month["down_percent"] - 12 / (10 * 24) * 100) < 0.01

    r = await web.client.get(f"/devices/{device_id}/uptime?windows=1h,400d")
    [hour, longest] = r.json()["windows"]
    assert hour["checks"] == 0 and hour["latency_p50_ms"] is None
    assert hour["latency_max_ms"] is None and hour["uptime_percent"] == 100.0
    assert longest["checks"] == 3


async def test_a_device_with_no_state_change_has_unknown_uptime(web: WebApp) -> None:
    device_id = await new_device(web, "new")
    [day] = (await web.client.get(f"/devices/{device_id}/uptime?windows=24h")).json()["windows"]
    assert day["uptime_percent"] is None and day["unknown_seconds"] == 86400.0
    assert day["checks"] == 0


async def test_uptime_of_an_unknown_device_is_a_404(web: WebApp) -> None:
    r = await web.client.get("/devices/424242/uptime")
    assert r.status_code == 404 and "424242" in r.json()["detail"]


async def uptime_24h(web: WebApp, device_id: int) -> dict[str, Any]:
    r = await web.client.get(f"/devices/{device_id}/uptime?windows=24h")
    assert r.status_code == 200, r.text
    day: dict[str, Any] = r.json()["windows"][0]
    return day


async def status_uptime(web: WebApp, key: str = "uptime_24h") -> dict[int, float | None]:
    return {i["device_id"]: i[key] for i in (await web.client.get("/status")).json()}


async def test_an_outage_inside_a_maintenance_window_is_left_out_of_uptime(
    web: WebApp, engine: AsyncEngine
) -> None:
    hours = timedelta(hours=1)
    history = (("unknown", "up", 10 * hours), ("up", "down", 6 * hours), ("down", "up", 4 * hours))
    patched, other = await new_device(web, "patched"), await new_device(web, "other")
    for device_id in (patched, other):
        await add_changes(engine, device_id, *history)
    before = await uptime_24h(web, patched)
    assert abs(before["uptime_percent"] - 80.0) < 0.01  # down 2 of 10 known hours
    assert before["maintenance_seconds"] == 0.0

    # The two hours of the outage, declared after the fact: a one-off window counts as given.
    changes = (await web.client.get(f"/devices/{patched}/state-changes")).json()
    start = next(c["at"] for c in changes if c["to"] == "down")
    r = await web.client.post(
        "/maintenance",
        json={"name": "patch", "start": start, "duration": "PT2H", "device_ids": [patched]},
    )
    assert r.status_code == 201, r.text
    window = r.json()["id"]
    day = await uptime_24h(web, patched)
    assert day["uptime_percent"] == 100.0 and day["down_percent"] == 0.0
    assert day["maintenance_seconds"] == 7200.0
    assert abs(day["unknown_seconds"] - 14 * 3600) < 5  # unknown time stays what it was
    assert (await uptime_24h(web, other))["maintenance_seconds"] == 0.0  # not its window
    statuses = await status_uptime(web)
    assert statuses[patched] == 100.0 and abs((statuses[other] or 0) - 80.0) < 0.01
    month = await status_uptime(web, "uptime_30d")  # the same hours: left out over 30 days too
    assert month[patched] == 100.0 and abs((month[other] or 0) - 80.0) < 0.01

    # A recurring window counts from its creation on: every hour for 59 minutes, made now,
    # leaves the past (the outage included) as it was.
    r = await web.client.post(
        "/maintenance",
        json={"name": "hourly", "cron": "0 * * * *", "duration": "PT59M", "device_ids": [other]},
    )
    assert r.status_code == 201, r.text
    recurring = await uptime_24h(web, other)
    assert recurring["maintenance_seconds"] < 5
    assert abs(recurring["uptime_percent"] - 80.0) < 0.01

    # A window switched off no longer leaves anything out.
    r = await web.client.patch(f"/maintenance/{window}", json={"is_active": False})
    assert r.status_code == 200, r.text
    again = await uptime_24h(web, patched)
    assert abs(again["uptime_percent"] - 80.0) < 0.01 and again["maintenance_seconds"] == 0.0
    assert abs(((await status_uptime(web))[patched] or 0) - 80.0) < 0.01


async def test_status_lists_every_device_with_its_state_newest_check_and_uptime(
    web: WebApp, engine: AsyncEngine
) -> None:
    ids = [await new_device(web, f"d{i}") for i in range(4)]
    hours = timedelta(hours=1)
    await manual_check(web, ids[0], 3 * hours, status_up=False, latency_ms=5.0)
    await manual_check(web, ids[0], 1 * hours, status_up=True, latency_ms=7.5)
    await manual_check(web, ids[1], 2 * hours, status_up=False)
    await add_changes(engine, ids[0], ("unknown", "down", 30 * hours), ("down", "up", 6 * hours))
    since = utcnow() - 6 * hours
    async with engine.begin() as conn:
        await conn.execute(
            update(DeviceHealth.__table__)  # type: ignore[attr-defined]
            .where(col(DeviceHealth.device_id) == ids[0])
            .values(state="up", since=since, revision=2, health={}, updated_at=since)
        )
    await web.client.patch(f"/devices/{ids[3]}", json={"is_active": False})

    with counted_statements(engine) as statements:
        r = await web.client.get("/status")
    assert r.status_code == 200
    items = r.json()
    assert len(statements) <= 5
    assert [i["device_id"] for i in items] == ids
    first, second, third, fourth = items
    assert first["name"] == "d0" and first["state"] == "up" and first["since"]
    assert first["last_check"]["outcome"] == "up" and first["last_check"]["latency_ms"] == 7.5
    assert first["last_check"]["status_up"] is True and first["last_check"]["checked_at"]
    assert abs(first["uptime_24h"] - 25.0) < 0.01  # down until 6 hours ago
    # over 30 days: unknown until the first change 30 hours ago, down 24 h, up 6 h
    assert abs(first["uptime_30d"] - 20.0) < 0.01
    # unknown since it was created (its health row; one failure is below the threshold)
    assert second["state"] == "unknown" and second["since"] is not None
    assert second["last_check"] == {
        "checked_at": second["last_check"]["checked_at"],
        "outcome": "down",
        "status_up": False,
        "latency_ms": None,
    }
    assert second["uptime_24h"] is None and second["uptime_30d"] is None
    assert third["last_check"] is None and third["state"] == "unknown"
    assert fourth["state"] == "paused"

    page = (await web.client.get("/status?limit=2&offset=1")).json()
    assert [i["device_id"] for i in page] == ids[1:3]
    assert (await web.client.get("/status?offset=10")).json() == []


async def test_status_takes_the_same_few_queries_for_many_devices(
    web: WebApp, engine: AsyncEngine
) -> None:
    ids = [await new_device(web, f"d{i}") for i in range(30)]
    for device_id in ids:
        await manual_check(web, device_id, timedelta(minutes=5), status_up=True)
    with counted_statements(engine) as few:
        assert len((await web.client.get("/status?limit=2")).json()) == 2
    with counted_statements(engine) as many:
        assert len((await web.client.get("/status")).json()) == 30
    assert len(many) == len(few) <= 5


async def test_status_with_recent_carries_each_devices_newest_results(
    web: WebApp, engine: AsyncEngine
) -> None:
    a, b = await new_device(web, "a"), await new_device(web, "b")  # b: no result yet
    for minutes, up in ((30, True), (20, False), (10, True)):
        await manual_check(web, a, timedelta(minutes=minutes), status_up=up, latency_ms=minutes)
    with counted_statements(engine) as statements:
        items = (await web.client.get("/status?recent=2")).json()
    assert len(statements) <= 6  # /status's four or five, and one for every device's results
    first, second = items
    assert (first["device_id"], second["device_id"]) == (a, b)
    assert [(c["outcome"], c["latency_ms"]) for c in first["recent"]] == [("down", 20), ("up", 10)]
    assert first["recent"][-1]["checked_at"] == first["last_check"]["checked_at"]
    assert first["recent"][0]["run_key"] and second["recent"] == []
    assert (await web.client.get("/status")).json()[0]["recent"] is None
    bad = await web.client.get("/status?recent=101")
    assert bad.status_code == 422 and ["query", "recent"] in [
        i["loc"] for i in bad.json()["detail"]
    ]
