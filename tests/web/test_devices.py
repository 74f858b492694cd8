"""``/devices`` over HTTP against a real NATS and SQLite: CRUD, events, errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from tests.helpers import collect_events, running_worker, wait_for
from tests.webapp import WebApp, serve_app

NEW = {"name": "edge-1", "address": "http://127.0.0.1:9/health"}


async def test_a_device_is_created_read_listed_changed_and_deleted(web: WebApp) -> None:
    r = await web.client.post("/devices", json={**NEW, "interval_seconds": 60})
    assert r.status_code == 201
    created = r.json()
    assert r.headers["location"] == f"/devices/{created['id']}"
    assert created["name"] == "edge-1" and created["address"] == NEW["address"]
    assert created["is_active"] is True and created["interval_seconds"] == 60
    assert created["timeout_seconds"] is None
    assert set(created) >= {"id", "name", "address", "is_active", "created_at", "updated_at"}
    assert created["created_at"].endswith("Z")

    r = await web.client.get(f"/devices/{created['id']}")
    assert (r.status_code, r.json()) == (200, created)
    assert (await web.client.get("/devices")).json() == [created]

    r = await web.client.patch(
        f"/devices/{created['id']}",
        json={"name": "edge-one", "is_active": False, "interval_seconds": None},
    )
    assert r.status_code == 200
    changed = r.json()
    assert changed["name"] == "edge-one" and changed["is_active"] is False
    assert changed["interval_seconds"] is None and changed["address"] == NEW["address"]
    assert changed["updated_at"] > created["updated_at"]
    assert changed["created_at"] == created["created_at"]

    r = await web.client.delete(f"/devices/{created['id']}")
    assert (r.status_code, r.content) == (204, b"")
    assert (await web.client.get(f"/devices/{created['id']}")).status_code == 404
    assert (await web.client.get("/devices")).json() == []


async def test_devices_are_filtered_by_is_active_and_paged(web: WebApp) -> None:
    ids = []
    for i in range(5):
        body = {**NEW, "name": f"d{i}", "is_active": i % 2 == 0}
        ids.append((await web.client.post("/devices", json=body)).json()["id"])

    async def names(**params: Any) -> list[str]:
        r = await web.client.get("/devices", params=params)
        assert r.status_code == 200
        return [d["name"] for d in r.json()]

    assert await names(is_active="true") == ["d0", "d2", "d4"]
    assert await names(is_active="false") == ["d1", "d3"]
    assert await names(limit=2) == ["d0", "d1"]
    assert await names(limit=2, offset=2) == ["d2", "d3"]
    assert await names(offset=10) == []


async def test_every_device_change_is_published_with_the_device_as_payload(
    web: WebApp, settings: Settings
) -> None:
    async with collect_events(settings) as events:
        created = (await web.client.post("/devices", json=NEW)).json()
        await web.client.patch(f"/devices/{created['id']}", json={"name": "renamed"})
        await web.client.patch(f"/devices/{created['id']}", json={})  # no change, no event
        await web.client.delete(f"/devices/{created['id']}")

        async def three() -> bool:
            return len(events) >= 3

        await wait_for(three, what="three device events")
    assert [e["type"] for e in events] == ["device.created", "device.updated", "device.deleted"]
    assert events[0]["payload"] == created
    assert events[1]["payload"]["name"] == "renamed"
    assert all(e["payload"]["id"] == created["id"] for e in events)


async def test_the_scheduler_follows_device_changes_at_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    async with running_worker(settings, worker=False) as broker:
        scheduler = ProbeScheduler(settings, broker, engine)
        async with serve_app(settings, engine, broker, scheduler=scheduler) as web:
            device = (await web.client.post("/devices", json=NEW)).json()
            assert device["id"] in scheduler.registered
            assert scheduler.registered[device["id"]].interval == settings.monitor_period_seconds

            await web.client.patch(f"/devices/{device['id']}", json={"interval_seconds": 30})
            assert scheduler.registered[device["id"]].interval == 30

            await web.client.patch(f"/devices/{device['id']}", json={"is_active": False})
            assert device["id"] not in scheduler.registered

            await web.client.patch(f"/devices/{device['id']}", json={"is_active": True})
            assert device["id"] in scheduler.registered
            await web.client.delete(f"/devices/{device['id']}")
            assert device["id"] not in scheduler.registered


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/devices/999", None),
        ("PATCH", "/devices/999", {"name": "x"}),
        ("DELETE", "/devices/999", None),
    ],
)
async def test_an_unknown_device_is_a_404_with_a_json_detail(
    web: WebApp, method: str, path: str, body: Any
) -> None:
    r = await web.client.request(method, path, json=body)
    assert r.status_code == 404
    assert "not found" in r.json()["detail"]


async def test_a_path_that_is_not_a_device_id_is_a_422_naming_it_and_a_wrong_method_a_405(
    web: WebApp,
) -> None:
    for segment in ("abc", "-1"):
        r = await web.client.get(f"/devices/{segment}")
        assert r.status_code == 422, r.text
        assert [i["loc"] for i in r.json()["detail"]] == [["path", "device_id"]]
    r = await web.client.get("/devices/1/nothing")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = await web.client.put("/devices/1", json=NEW)
    assert r.status_code == 405 and "detail" in r.json()
