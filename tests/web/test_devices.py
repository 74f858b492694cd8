"""``/devices`` over HTTP against a real NATS and SQLite: CRUD, events, errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.db import session_factory
from storage.models import Device
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


async def test_a_wrong_method_on_a_literal_path_beside_a_device_id_is_a_405(web: WebApp) -> None:
    # /devices/validate is not a device id: the loose /devices/{device_id} route stays out
    for method in ("GET", "PATCH", "DELETE"):
        r = await web.client.request(method, "/devices/validate")
        assert r.status_code == 405, (method, r.text)
        assert r.headers["allow"] == "POST"


HEALTH_FIELDS: dict[str, Any] = {
    "conditions": ["[STATUS] == 200", "[BODY].status == UP"],
    "degraded_when": ["[RESPONSE_TIME] > 800"],
    "failure_threshold": 5,
    "success_threshold": 2,
    "interval_seconds": 60,
    "retry_interval_seconds": 10,
    "method": "POST",
    "headers": {"Authorization": "Bearer x", "X-Tag": "a\tb"},
    "body": '{"ping": true}',
    "follow_redirects": False,
    "verify_tls": False,
    "channel_ids": [3, 1],
    "notify_on": ["down", "up", "degraded"],
    "reminder_every_minutes": 30,
    "snoozed_until": "2030-01-01T00:00:00Z",
    "public": True,
    "public_details": True,
}
DEFAULTS: dict[str, Any] = {
    "conditions": None,
    "degraded_when": None,
    "failure_threshold": 3,
    "success_threshold": 1,
    "retry_interval_seconds": None,
    "method": None,
    "headers": None,
    "body": None,
    "follow_redirects": True,
    "verify_tls": True,
    "channel_ids": None,
    "notify_on": None,
    "reminder_every_minutes": 0,
    "snoozed_until": None,
    "public": False,
    "public_details": False,
}


async def test_every_health_field_is_stored_shown_and_reset_by_a_patch_of_null(
    web: WebApp,
) -> None:
    plain = (await web.client.post("/devices", json=NEW)).json()
    assert {k: plain[k] for k in DEFAULTS} == DEFAULTS
    # channel_ids must name channels that exist (web.channels.check_channel_ids)
    channel_ids = []
    for name in ("a", "b"):
        channel = {"name": name, "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
        made = await web.client.post("/channels", json=channel)
        assert made.status_code == 201, made.text
        channel_ids.append(made.json()["id"])
    fields = HEALTH_FIELDS | {"channel_ids": channel_ids}
    r = await web.client.post("/devices", json={**NEW, **fields})
    assert r.status_code == 201, r.text
    created = r.json()
    shown = fields | {"headers": {"Authorization": "***", "X-Tag": "***"}}  # values masked
    assert {k: created[k] for k in fields} == shown
    assert (await web.client.get(f"/devices/{created['id']}")).json() == created
    nullable = [k for k, v in DEFAULTS.items() if v is None]
    r = await web.client.patch(f"/devices/{created['id']}", json=dict.fromkeys(nullable))
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in nullable} == dict.fromkeys(nullable)
    assert r.json()["failure_threshold"] == 5  # not sent, not changed


async def test_header_values_are_never_shown_and_a_masked_round_trip_keeps_them(
    web: WebApp, settings: Settings, engine: AsyncEngine
) -> None:
    secret = {"Authorization": "Bearer s3cret", "X-Tag": "a"}
    async with collect_events(settings) as events:
        r = await web.client.post("/devices", json={**NEW, "headers": secret})
        device = r.json()
        assert device["headers"] == {"Authorization": "***", "X-Tag": "***"}
        assert (await web.client.get("/devices")).json()[0]["headers"] == device["headers"]
        # What the dashboard sends back after an edit: one value kept, one changed, one new.
        sent = {"Authorization": "***", "X-Tag": "b", "X-New": "***"}
        r = await web.client.patch(f"/devices/{device['id']}", json={"headers": sent})
        assert r.status_code == 200, r.text

        async def two() -> bool:
            return len(events) >= 2

        await wait_for(two, what="two device events")
    assert "s3cret" not in str(events) and "s3cret" not in r.text
    async with session_factory(engine)() as session:
        row = await session.get(Device, device["id"])
        assert row is not None
        # Nothing stored under X-New: its "***" is taken as sent.
        assert row.headers == {"Authorization": "Bearer s3cret", "X-Tag": "b", "X-New": "***"}


@pytest.mark.parametrize(
    ("address", "conditions"),
    [
        ("tcp://db.local:5432", ["[CONNECTED] == true", "[RESPONSE_TIME] < 100"]),
        ("tls://mail.local:993", ["[CERTIFICATE_EXPIRATION] > 30d"]),
        ("dns://example.com?type=MX&server=127.0.0.1:5353", ["[DNS_RCODE] == NOERROR"]),
        ("recorder://task01", ["[APP_STATUS] == started", "[BODY].payload.file_path != x"]),
        ("https://example.com/", ["[CERTIFICATE_EXPIRATION] > 72h", "[STATUS] == 200"]),
    ],
)
async def test_every_check_kind_is_accepted_with_the_conditions_it_fills(
    web: WebApp, address: str, conditions: list[str]
) -> None:
    r = await web.client.post(
        "/devices", json={"name": "k", "address": address, "conditions": conditions}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["address"], r.json()["conditions"]) == (address, conditions)


async def test_a_patch_of_the_address_checks_the_stored_conditions_against_the_new_kind(
    web: WebApp,
) -> None:
    r = await web.client.post("/devices", json={**NEW, "conditions": ["[STATUS] == 200"]})
    device_id = r.json()["id"]
    r = await web.client.patch(f"/devices/{device_id}", json={"address": "tcp://db.local:5432"})
    assert r.status_code == 422
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["body", "address"]
    assert "tcp:// check does not fill [STATUS], read by conditions[0]" in issue["msg"]
    r = await web.client.patch(
        f"/devices/{device_id}",
        json={"address": "tcp://db.local:5432", "conditions": None},
    )
    assert r.status_code == 200 and r.json()["address"] == "tcp://db.local:5432"
    # a shorter interval than the stored retry interval is refused at the interval
    await web.client.patch(f"/devices/{device_id}", json={"retry_interval_seconds": 120})
    r = await web.client.patch(f"/devices/{device_id}", json={"interval_seconds": 60})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "interval_seconds"]


async def test_reminder_min_minutes_lowers_the_reminder_floor(
    settings: Settings, engine: AsyncEngine
) -> None:
    lowered = settings.model_copy(update={"reminder_min_minutes": 1})
    async with (
        running_worker(lowered, worker=False) as broker,
        serve_app(lowered, engine, broker) as web,
    ):
        r = await web.client.post("/devices", json={**NEW, "reminder_every_minutes": 1})
    assert r.status_code == 201 and r.json()["reminder_every_minutes"] == 1
