"""Channels, notifications, maintenance windows and snooze over REST (the real app on
uvicorn, real SQLite): secrets never answered, bad input a 422 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.models import Device
from tests.jobs.alerts.helpers import add_change, add_device
from tests.jobs.alerts.receiver import receiver
from tests.webapp import WebApp, of_type, receive_until
from web.channels import check_channel_ids

HOOK = {
    "name": "ops",
    "kind": "webhook",
    "url": "https://u:pw@hooks.example.org/T0/s3cr3t",
    "secret": "sign-me",
    "headers": {"Authorization": "Bearer tok"},
    "is_default": True,
}


def _loc(response: Any) -> list[Any]:
    assert response.status_code == 422, response.text
    return [issue["loc"] for issue in response.json()["detail"]]


async def test_a_channel_is_created_read_changed_and_deleted_with_secrets_masked(
    web: WebApp,
) -> None:
    created = await web.client.post("/channels", json=HOOK)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["url"] == "https://hooks.example.org/***"
    assert channel["secret"] == "***" and channel["headers"] == {"Authorization": "***"}
    for text in (created.text, (await web.client.get("/channels")).text):
        assert "pw" not in text and "s3cr3t" not in text and "sign-me" not in text
        assert "tok" not in text
    one = f"/channels/{channel['id']}"
    changed = await web.client.patch(one, json={"name": "ops-2", "secret": None})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["secret"]) == ("ops-2", None)
    apprise = await web.client.patch(
        one, json={"kind": "apprise", "url": "ntfy://user:pass@ntfy.example.org/alerts"}
    )
    assert apprise.status_code == 200, apprise.text
    assert "pass" not in apprise.json()["url"]
    assert (await web.client.delete(one)).status_code == 204
    assert (await web.client.get(one)).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/channels", {**HOOK, "kind": "sms"}, ["body", "kind"]),
        ("/channels", {**HOOK, "kind": "apprise", "url": "nosuch://x"}, ["body", "url"]),
        ("/channels", {**HOOK, "kind": "apprise", "url": "slack://one-token"}, ["body", "url"]),
        ("/channels", {**HOOK, "url": "ftp://x/"}, ["body", "url"]),
        ("/channels", {**HOOK, "title_template": "{{ device.nam }}"}, ["body", "title_template"]),
        ("/channels", {**HOOK, "text_template": "{% if %}"}, ["body", "text_template"]),
        ("/maintenance", {"name": "w", "cron": "0 2 * *", "duration": 60}, ["body", "cron"]),
        ("/maintenance", {"name": "w", "cron": "0 0 31 2 *", "duration": 60}, ["body", "cron"]),
        ("/maintenance", {"name": "w", "cron": "0 2 * * 0", "duration": 60,
                          "timezone": "Mars/Olympus"}, ["body", "timezone"]),
        ("/maintenance", {"name": "w", "start": "2026-12-01T00:00:00Z", "duration": -60},
         ["body", "duration"]),
        ("/maintenance", {"name": "w", "start": "2026-12-01T00:00:00Z", "duration": "-PT1H"},
         ["body", "duration"]),
        ("/maintenance", {"name": "w", "start": "2026-12-01T00:00:00Z", "duration": 60,
                          "mode": "nap"}, ["body", "mode"]),
        ("/maintenance", {"name": "w", "duration": 60}, ["body"]),
        # its end would be past the last time there is: a 422, not a 500 later
        ("/maintenance", {"name": "w", "start": "9999-12-31T00:00:00Z", "duration": 60},
         ["body", "start"]),
        ("/maintenance", {"name": "w", "start": "9999-12-31T23:59:00-23:59", "duration": 60},
         ["body", "start"]),
    ],
)  # fmt: skip
async def test_bad_input_is_a_422_naming_the_field(
    web: WebApp, path: str, body: dict[str, Any], loc: list[str]
) -> None:
    assert loc in _loc(await web.client.post(path, json=body))


async def test_a_maintenance_window_is_created_changed_and_checked_again(web: WebApp) -> None:
    body = {"name": "patch", "cron": "0 2 * * 0", "duration": "PT2H",
            "timezone": "Europe/Berlin", "device_ids": [1, 2]}  # fmt: skip
    created = await web.client.post("/maintenance", json=body)
    assert created.status_code == 201, created.text
    window = created.json()
    assert (window["duration"], window["mode"], window["start"]) == (
        7200.0,
        "suppress_alerts",
        None,
    )
    one = f"/maintenance/{window['id']}"
    to_one_off = await web.client.patch(one, json={"start": "2026-12-24T20:00:00Z"})
    assert to_one_off.status_code == 200, to_one_off.text
    assert (to_one_off.json()["cron"], to_one_off.json()["start"]) == (None, "2026-12-24T20:00:00Z")
    assert ["body", "timezone"] in _loc(await web.client.patch(one, json={"timezone": "Nope/No"}))
    assert ["body", "duration"] in _loc(await web.client.patch(one, json={"duration": 0}))
    assert (await web.client.get("/maintenance")).json()[0]["id"] == window["id"]
    assert (await web.client.delete(one)).status_code == 204
    assert (await web.client.get(one)).status_code == 404


async def test_a_device_is_snoozed_and_woken(web: WebApp, engine: AsyncEngine) -> None:
    device = await add_device(engine)
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    snoozed = await web.client.post(f"/devices/{device}/snooze", json={"until": until.isoformat()})
    assert snoozed.status_code == 200, snoozed.text
    async with session_factory(engine)() as session:
        row = await session.get(Device, device)
        assert row is not None and row.snoozed_until == until
    woken = await web.client.delete(f"/devices/{device}/snooze")
    assert woken.json() == {"device_id": device, "snoozed_until": None}
    assert (await web.client.post("/devices/999/snooze", json={"until": until.isoformat()})
            ).status_code == 404  # fmt: skip
    for bad in ("tomorrow", 0, "2026-12-01T08:00:00"):  # not a time, a number, no zone
        assert ["body", "until"] in _loc(
            await web.client.post(f"/devices/{device}/snooze", json={"until": bad})
        )


async def test_the_channel_test_answers_what_the_receiver_said(web: WebApp) -> None:
    with receiver(plan=[418]) as rx:
        hook = {**HOOK, "url": rx.url}
        channel = (await web.client.post("/channels", json=hook)).json()
        teapot = (await web.client.post(f"/channels/{channel['id']}/test")).json()
        ok = (await web.client.post(f"/channels/{channel['id']}/test")).json()
    assert (teapot["ok"], teapot["response_code"], teapot["error"]) == (False, 418, "HTTP 418")
    assert (ok["ok"], ok["response_code"]) == (True, 200)
    assert ok["answer"] == '{"received":true}'
    got = rx.requests[-1]
    assert got.body["event"] == "test" and got.headers["x-fleetprobe-signature"].startswith(
        "sha256="
    )
    assert got.headers["authorization"] == "Bearer tok"
    # The test message names no address (it has none), rather than "None".
    assert got.body["text"].startswith("test is down since ") and "None" not in got.body["text"]


async def test_the_channel_test_of_an_apprise_channel_goes_the_delivery_way(web: WebApp) -> None:
    # Apprise's json:// POSTs {"title", "message", ...} to a host: the local receiver.
    with receiver(plan=[200, 500]) as rx:
        url = "json://" + rx.url.removeprefix("http://")
        created = await web.client.post("/channels", json={"name": "j", "kind": "apprise",
                                                           "url": url})  # fmt: skip
        assert created.status_code == 201, created.text
        test = f"/channels/{created.json()['id']}/test"
        ok = (await web.client.post(test)).json()
        refused = (await web.client.post(test)).json()
    assert (ok["ok"], ok["error"]) == (True, None)
    assert (refused["ok"], refused["error"]) == (False, "Apprise reported a failed send")
    first = rx.requests[0].body
    assert "test message" in first["message"] and first["title"]


async def test_notifications_page_back_and_filter(web: WebApp, engine: AsyncEngine) -> None:
    from storage.alert_repo import record_notifications

    device = await add_device(engine)
    changes = [await add_change(engine, device, r, "up", "down") for r in range(1, 6)]
    await record_notifications(engine, [
        {"device_id": device, "channel_id": 1 + (i % 2), "state_change_id": c.id, "reminder": 0,
         "status": "sent" if i % 2 else "suppressed"}
        for i, c in enumerate(changes)
    ])  # fmt: skip
    first = (await web.client.get("/notifications", params={"limit": 2})).json()
    assert len(first) == 2 and first[0]["id"] > first[1]["id"]
    rest = (await web.client.get("/notifications", params={"before_id": first[-1]["id"]})).json()
    assert len(rest) == 3 and all(r["id"] < first[-1]["id"] for r in rest)
    sent = (await web.client.get("/notifications", params={"status": "sent"})).json()
    assert {r["status"] for r in sent} == {"sent"} and len(sent) == 2
    by_channel = (await web.client.get("/notifications", params={"channel_id": 1})).json()
    assert {r["channel_id"] for r in by_channel} == {1} and len(by_channel) == 3
    assert ["query", "status"] in _loc(
        await web.client.get("/notifications", params={"status": "lost"})
    )


async def test_a_deleted_device_takes_its_notifications_and_leaves_its_windows(
    web: WebApp, engine: AsyncEngine
) -> None:
    from storage.alert_repo import record_notifications

    kept = await add_device(engine, name="kept")
    doomed = await add_device(engine, name="doomed")  # the highest id: SQLite reuses it
    channel = (await web.client.post("/channels", json=HOOK)).json()["id"]
    rows = []
    for device in (kept, doomed):
        change = await add_change(engine, device, 1, "up", "down")
        rows.append({"device_id": device, "channel_id": channel, "state_change_id": change.id,
                     "reminder": 0, "status": "sent"})  # fmt: skip
    await record_notifications(engine, rows)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await web.client.post(f"/devices/{doomed}/snooze", json={"until": until})).is_success
    windows = []
    for ids in ([kept, doomed], [doomed], None):
        body = {"name": "w", "cron": "0 2 * * 0", "duration": 60, "device_ids": ids}
        windows.append((await web.client.post("/maintenance", json=body)).json()["id"])

    assert (await web.client.delete(f"/devices/{doomed}")).status_code == 204
    notes = (await web.client.get("/notifications")).json()
    assert [n["device_id"] for n in notes] == [kept]  # the other device's history stays
    assert (await web.client.get(f"/devices/{doomed}/state-changes")).status_code == 404
    devices_of = {w["id"]: w["device_ids"] for w in (await web.client.get("/maintenance")).json()}
    # Left with no device, a window covers none (not every device, which null means).
    assert [devices_of[w] for w in windows] == [[kept], [], None]

    # A new device given the same id starts clean: no history, no window, no snooze.
    reborn = await web.client.post(
        "/devices", json={"name": "new", "address": "http://127.0.0.1:9/"}
    )
    assert reborn.json()["id"] == doomed and reborn.json()["snoozed_until"] is None
    mine = (await web.client.get("/notifications", params={"device_id": doomed})).json()
    assert mine == []


async def test_a_deleted_channel_leaves_the_devices_that_named_it(web: WebApp) -> None:
    kept = (await web.client.post("/channels", json=HOOK)).json()["id"]
    doomed = (await web.client.post("/channels", json=HOOK)).json()["id"]  # the highest id
    both, only = [
        (await web.client.post("/devices", json={"name": name, "address": "http://127.0.0.1:9/",
                                                 "channel_ids": ids})).json()["id"]
        for name, ids in (("both", [kept, doomed]), ("only", [doomed]))
    ]  # fmt: skip
    assert (await web.client.delete(f"/channels/{doomed}")).status_code == 204

    async def channel_ids(device: int) -> Any:
        return (await web.client.get(f"/devices/{device}")).json()["channel_ids"]

    # Left with none, a device notifies no channel (null would mean the default ones).
    assert (await channel_ids(both), await channel_ids(only)) == ([kept], [])
    # A new channel given the same id (SQLite reuses it) is not chosen by either device.
    assert (await web.client.post("/channels", json=HOOK)).json()["id"] == doomed
    assert (await channel_ids(both), await channel_ids(only)) == ([kept], [])


async def test_channel_ids_must_name_channels_that_exist(web: WebApp, engine: AsyncEngine) -> None:
    from web.errors import RequestInvalid

    channel = (await web.client.post("/channels", json=HOOK)).json()
    async with session_factory(engine)() as session:
        await check_channel_ids(session, [channel["id"]])
        await check_channel_ids(session, None)
        with pytest.raises(RequestInvalid) as refused:
            await check_channel_ids(session, [channel["id"], 4242])
    assert isinstance(refused.value.detail, list)
    (issue,) = refused.value.detail
    assert issue.loc == ["body", "channel_ids"] and "4242" in issue.msg


async def test_a_window_in_force_answers_until_when(web: WebApp) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    bodies = [
        {"name": "now", "start": (now - timedelta(minutes=10)).isoformat(), "duration": "PT1H"},
        {"name": "later", "start": (now + timedelta(hours=5)).isoformat(), "duration": "PT1H"},
        {"name": "over", "start": (now - timedelta(hours=5)).isoformat(), "duration": "PT1H"},
        {"name": "off", "start": (now - timedelta(minutes=10)).isoformat(), "duration": "PT1H",
         "is_active": False},
        {"name": "every minute", "cron": "* * * * *", "duration": "PT2M"},
    ]  # fmt: skip
    for body in bodies:
        assert (await web.client.post("/maintenance", json=body)).status_code == 201
    answer = {w["name"]: w["open_until"] for w in (await web.client.get("/maintenance")).json()}
    assert answer["now"] == (now + timedelta(minutes=50)).isoformat().replace("+00:00", "Z")
    assert answer["later"] is None and answer["over"] is None and answer["off"] is None
    # a cron window whose occurrences overlap is always in force: until its current one ends
    until = datetime.fromisoformat(answer["every minute"])
    assert now < until <= now + timedelta(minutes=2, seconds=5)


async def test_a_snooze_is_announced_as_a_device_change(web: WebApp, engine: AsyncEngine) -> None:
    device = await add_device(engine)
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with web.websocket("types=device.updated") as ws:
        await web.client.post(f"/devices/{device}/snooze", json={"until": until.isoformat()})
        event, _ = await receive_until(ws, of_type("device.updated", id=device))
        assert datetime.fromisoformat(event["payload"]["snoozed_until"]) == until
        await web.client.delete(f"/devices/{device}/snooze")
        event, _ = await receive_until(ws, of_type("device.updated", id=device))
        assert event["payload"]["snoozed_until"] is None


async def test_a_result_probed_in_a_window_says_so_in_the_history(
    web: WebApp, engine: AsyncEngine
) -> None:
    from jobs.probe.row import check_row
    from jobs.probe.run import ProbeResult
    from storage.models import CheckResult

    device = await add_device(engine)
    now = datetime.now(UTC)
    async with session_factory(engine)() as session:
        for minutes, marked in ((2, False), (1, True)):
            row = check_row(device_id=device, run_key=f"probe:{device}:{minutes}",
                            source="schedule", result=ProbeResult(False, None),
                            checked_at=now - timedelta(minutes=minutes),
                            in_maintenance=marked)  # fmt: skip
            session.add(CheckResult(**row))
        await session.commit()
    checks = (await web.client.get(f"/devices/{device}/checks")).json()
    assert [c["in_maintenance"] for c in checks] == [True, False]  # newest first
