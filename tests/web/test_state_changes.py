"""``/devices/{id}/state-changes`` and ``/devices/{id}/incidents``, and the state a
device's life through the API gives it: unknown when created, paused and resumed by
``is_active``, down and up by its results (recorded by hand here: no worker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.settings import Settings
from tests.helpers import collect_events, wait_for
from tests.webapp import WebApp

T0 = datetime(2026, 2, 1, tzinfo=UTC)


async def new_device(web: WebApp, **fields: Any) -> int:
    body = {"name": "edge", "address": "http://127.0.0.1:9/", **fields}
    r = await web.client.post("/devices", json=body)
    assert r.status_code == 201, r.text
    device_id: int = r.json()["id"]
    return device_id


async def record(web: WebApp, device_id: int, minute: int, up: bool) -> None:
    at = (T0 + timedelta(minutes=minute)).isoformat()
    body = {"status_up": up, "checked_at": at, "status_code": 200 if up else 503}
    r = await web.client.post(f"/devices/{device_id}/checks", json=body)
    assert r.status_code == 201, r.text


async def test_changes_and_incidents_follow_the_results(web: WebApp) -> None:
    device = await new_device(web)
    assert (await web.client.get(f"/devices/{device}/state-changes")).json() == []
    await record(web, device, 0, True)
    for minute in (1, 2, 3):
        await record(web, device, minute, False)
    await record(web, device, 10, True)
    for minute in (11, 12, 13):
        await record(web, device, minute, False)

    changes = (await web.client.get(f"/devices/{device}/state-changes")).json()
    assert [(c["from"], c["to"]) for c in changes] == [
        ("up", "down"),
        ("down", "up"),
        ("up", "down"),
        ("unknown", "up"),
    ]
    newest = changes[0]
    assert newest["at"] == (T0 + timedelta(minutes=13)).isoformat().replace("+00:00", "Z")
    assert newest["cause"] == "status 503" and newest["run_key"].startswith("entered:")
    assert set(newest) == {"id", "device_id", "revision", "from", "to", "at", "cause", "run_key"}

    page = await web.client.get(
        f"/devices/{device}/state-changes", params={"limit": 2, "before": changes[1]["at"]}
    )
    assert [(c["from"], c["to"]) for c in page.json()] == [("up", "down"), ("unknown", "up")]

    incidents = (await web.client.get(f"/devices/{device}/incidents")).json()
    assert len(incidents) == 2
    open_one, closed = incidents
    assert open_one["ended_at"] is None and open_one["cause"] == "status 503"
    assert open_one["duration_seconds"] > 0
    assert closed["started_at"].startswith("2026-02-01T00:03:00")
    assert closed["ended_at"].startswith("2026-02-01T00:10:00")
    assert closed["duration_seconds"] == 420.0
    one = (await web.client.get(f"/devices/{device}/incidents", params={"limit": 1})).json()
    assert one == [open_one | {"duration_seconds": one[0]["duration_seconds"]}]


async def test_incidents_page_back_with_before_each_with_its_end(web: WebApp) -> None:
    # Three down periods (thresholds 1): 3-10 and 13-20 closed, 23- still open.
    device = await new_device(web, failure_threshold=1)
    for start, end in ((3, 10), (13, 20), (23, None)):
        await record(web, device, start - 1, True)
        await record(web, device, start, False)
        if end is not None:
            await record(web, device, end, True)

    def minute(m: int) -> str:
        return (T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z")

    url = f"/devices/{device}/incidents"
    everything = (await web.client.get(url)).json()
    assert [(i["started_at"], i["ended_at"]) for i in everything] == [
        (minute(23), None),
        (minute(13), minute(20)),
        (minute(3), minute(10)),
    ]
    pages, before = [], None
    for _ in range(len(everything) + 1):  # bounded: a server ignoring before never ends
        params: dict[str, Any] = {"limit": 1} | ({"before": before} if before else {})
        page = (await web.client.get(url, params=params)).json()
        if not page:
            break
        assert len(page) == 1
        pages.extend(page)
        before = page[-1]["started_at"]
    assert [i["started_at"] for i in pages] == [i["started_at"] for i in everything]
    assert pages[1:] == everything[1:]
    # A page that starts inside an incident holds it, with the end that came after.
    inside = (await web.client.get(url, params={"before": minute(15)})).json()
    assert inside == everything[1:]
    assert (await web.client.get(url, params={"before": minute(3)})).json() == []


async def test_pausing_and_resuming_a_device_are_state_changes(
    web: WebApp, settings: Settings
) -> None:
    device = await new_device(web)
    async with collect_events(settings) as events:
        r = await web.client.patch(f"/devices/{device}", json={"is_active": False})
        assert r.status_code == 200
        r = await web.client.patch(f"/devices/{device}", json={"is_active": True})
        assert r.status_code == 200

        def changed() -> list[dict[str, Any]]:
            return [e["payload"] for e in events if e["type"] == "device.state_changed"]

        async def two() -> bool:
            return len(changed()) == 2

        await wait_for(two, what="two device.state_changed events")
    assert [(p["from"], p["to"], p["run_key"]) for p in changed()] == [
        ("unknown", "paused", None),
        ("paused", "unknown", None),
    ]
    assert changed()[0]["cause"] == "device deactivated"
    rows = (await web.client.get(f"/devices/{device}/state-changes")).json()
    assert [(c["from"], c["to"]) for c in rows] == [("paused", "unknown"), ("unknown", "paused")]


async def test_a_deleted_device_takes_its_state_history_with_it(web: WebApp) -> None:
    device = await new_device(web, is_active=False)
    await web.client.patch(f"/devices/{device}", json={"is_active": True})
    assert len((await web.client.get(f"/devices/{device}/state-changes")).json()) == 1
    assert (await web.client.delete(f"/devices/{device}")).status_code == 204
    assert (await web.client.get(f"/devices/{device}/state-changes")).status_code == 404


@pytest.mark.parametrize("path", ["state-changes", "incidents"])
async def test_an_unknown_device_is_a_404_and_bad_parameters_a_422(web: WebApp, path: str) -> None:
    r = await web.client.get(f"/devices/999999/{path}")
    assert r.status_code == 404 and "999999" in r.text
    device = await new_device(web)
    for params in ({"limit": 0}, {"limit": "x"}, {"limit": 1001}):
        r = await web.client.get(f"/devices/{device}/{path}", params=params)
        assert r.status_code == 422, (params, r.text)
        assert any(list(issue["loc"])[:1] == ["query"] for issue in r.json()["detail"]), r.text
    r = await web.client.get(f"/devices/{2**63}/{path}")
    assert r.status_code == 422


@pytest.mark.parametrize("before", ["2026-01-01T00:00:00", "0.5", "1767225600", "yesterday"])
async def test_before_must_be_a_date_time_with_a_zone(web: WebApp, before: str) -> None:
    device = await new_device(web)
    for path in ("state-changes", "incidents"):
        r = await web.client.get(f"/devices/{device}/{path}", params={"before": before})
        assert r.status_code == 422 and "before" in r.text


async def test_the_endpoints_are_in_the_spec(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    for path in ("/devices/{device_id}/state-changes", "/devices/{device_id}/incidents"):
        assert set(spec["paths"][path]["get"]["responses"]) >= {"200", "404", "422"}
    change = spec["components"]["schemas"]["StateChangeRead"]["properties"]
    assert {"from", "to", "at", "cause", "run_key"} <= set(change)
    incident = spec["components"]["schemas"]["IncidentRead"]["properties"]
    assert set(incident) == {"started_at", "ended_at", "cause", "duration_seconds"}
