"""Bad input through the real server: every refusal names the field, and a refused request
changes nothing: no row, no event, no queued job."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import nats

from core.settings import Settings
from tests.helpers import collect_events, wait_for
from tests.webapp import WebApp
from web.limits import MAX_BODY_BYTES

ADDRESS = "http://127.0.0.1:9/"
# (method, path, body: JSON value or raw bytes, where the refusal must point)
# {device} and {schedule} are an existing device and recorder schedule.
REFUSED: list[tuple[str, str, Any, list[str | int]]] = [
    ("POST", "/devices", b'{"name": "x",', ["body"]),
    ("POST", "/devices", b"[]", ["body"]),
    ("POST", "/devices", {"name": 5, "address": ADDRESS}, ["body", "name"]),
    ("POST", "/devices", {"name": "x", "address": ADDRESS, "colour": "red"}, ["body", "colour"]),
    ("POST", "/devices", {"name": "x", "address": "ftp://x"}, ["body", "address"]),
    ("POST", "/devices", {"name": "x", "address": ADDRESS, "is_active": "true"},
     ["body", "is_active"]),
    ("POST", "/devices", {"address": ADDRESS}, ["body", "name"]),
    ("PATCH", "/devices/{device}", {"name": "renamed", "colour": "red"}, ["body", "colour"]),
    ("PATCH", "/devices/{device}", {"name": "renamed", "timeout_seconds": 61},
     ["body", "timeout_seconds"]),
    ("PATCH", "/devices/{device}", {"is_active": False, "name": None}, ["body", "name"]),
    ("PATCH", "/devices/{device}", b"\xff\xfe", ["body"]),
    ("POST", "/devices/{device}/checks", {"status_up": "yes"}, ["body", "status_up"]),
    ("POST", "/devices/{device}/checks", {"status_up": True, "checked_at": "2026-01-01T00:00"},
     ["body", "checked_at"]),
    ("GET", "/devices?limit=0", None, ["query", "limit"]),
    ("GET", "/devices?colour=red", None, ["query", "colour"]),
    ("GET", "/devices/{device}/checks?limit=x", None, ["query", "limit"]),
    ("POST", "/jobs/probe", {"device_ids": ["1"]}, ["body", "device_ids", 0]),
    ("POST", "/jobs/probe?wait=maybe", {}, ["query", "wait"]),
    ("POST", "/tasks/run?timeout=-1", None, ["query", "timeout"]),
    ("POST", "/recorder/schedules", {"task_id": "cam1", "cmd": "explode", "interval_seconds": 60},
     ["body", "cmd"]),
    ("POST", "/recorder/schedules", {"task_id": "cam1", "cmd": "start", "cron": "61 * * * *"},
     ["body", "cron"]),
    ("PATCH", "/recorder/schedules/{schedule}", {"is_active": False, "interval_seconds": 0},
     ["body", "interval_seconds"]),
    ("PATCH", "/recorder/schedules/{schedule}", {"is_active": False, "when": "now"},
     ["body", "when"]),
    ("POST", "/recorder/cam1/start", {"segment_time": "300"}, ["body", "segment_time"]),
    ("POST", "/recorder/cam1/stop", {"segment_time": 300, "loud": True}, ["body", "loud"]),
    ("POST", f"/recorder/{'x' * 129}/start", {}, ["path", "task_id"]),
    ("GET", "/recorder/cam1/commands?limit=1001", None, ["query", "limit"]),
    # NUL: PostgreSQL cannot store it (a 500 there before it was refused)
    ("POST", "/devices", {"name": "a\x00b", "address": ADDRESS}, ["body", "name"]),
    ("POST", "/devices/{device}/checks", {"status_up": True, "error": "\x00"},
     ["body", "error"]),
    ("POST", "/recorder/schedules", {"task_id": "cam1", "cmd": "start", "interval_seconds": 60,
     "payload": {"snd_source": "pulse\x00"}}, ["body", "payload", "snd_source"]),
    ("POST", "/recorder/cam1/start", {"vid_stream": "\x00"}, ["body", "vid_stream"]),
    ("GET", "/recorder/cam%001/status", None, ["path", "task_id"]),
    ("GET", "/recorder/schedules?task_id=cam%00", None, ["query", "task_id"]),
    # path parameters past their declared bounds (BIGINT ids, 128-character task ids)
    ("GET", f"/devices/{2**70}", None, ["path", "device_id"]),
    ("DELETE", f"/devices/{2**63}", None, ["path", "device_id"]),
    ("GET", f"/recorder/schedules/{2**63}", None, ["path", "schedule_id"]),
    ("GET", f"/recorder/{'x' * 129}/commands", None, ["path", "task_id"]),
]  # fmt: skip


def database_dump(settings: Settings) -> list[str]:
    path = Path(settings.database_url.split("///", 1)[1])
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


async def queued_jobs(settings: Settings) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        info = await nc.jetstream().stream_info(settings.jobs_stream)
        return info.state.messages
    finally:
        await nc.close()


async def request(web: WebApp, method: str, path: str, body: Any) -> Any:
    if isinstance(body, bytes):
        return await web.client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
    return await web.client.request(method, path, json=body)


async def existing(web: WebApp) -> dict[str, int]:
    device = await web.client.post("/devices", json={"name": "kept", "address": ADDRESS})
    schedule = await web.client.post(
        "/recorder/schedules", json={"task_id": "cam1", "cmd": "status", "interval_seconds": 60}
    )
    assert device.status_code == schedule.status_code == 201
    return {"device": device.json()["id"], "schedule": schedule.json()["id"]}


async def test_each_invalid_request_is_a_422_that_names_the_field(web: WebApp) -> None:
    ids = await existing(web)
    for method, path, body, loc in REFUSED:
        r = await request(web, method, path.format(**ids), body)
        assert r.status_code == 422, (method, path, body, r.text)
        issues = r.json()["detail"]
        assert loc in [issue["loc"] for issue in issues], (method, path, issues)
        assert all(issue["msg"] and issue["type"] for issue in issues)


async def test_a_refused_request_writes_nothing_announces_nothing_and_queues_nothing(
    web: WebApp, settings: Settings
) -> None:
    ids = await existing(web)
    before, jobs_before = database_dump(settings), await queued_jobs(settings)
    statuses: list[int] = []
    async with collect_events(settings) as events:
        for method, path, body, _ in REFUSED:
            r = await request(web, method, path.format(**ids), body)
            statuses.append(r.status_code)
        big = b'{"name": "big", "address": "http://127.0.0.1:9/"' + b" " * MAX_BODY_BYTES + b"}"
        for method, path in (("POST", "/devices"), ("PATCH", f"/devices/{ids['device']}")):
            statuses.append((await request(web, method, path, big)).status_code)
        statuses.append((await web.client.patch("/devices/999", json={"name": "x"})).status_code)
        statuses.append((await web.client.delete("/recorder/schedules/999")).status_code)
        # a request that does go through, last: its event shows the subscription worked
        await web.client.post("/devices", json={"name": "marker", "address": ADDRESS})

        async def announced() -> bool:
            return bool(events)

        await wait_for(announced, what="the marker's event")
    assert statuses == [422] * len(REFUSED) + [413, 413, 404, 404]
    assert [e["payload"]["name"] for e in events] == ["marker"]
    after = database_dump(settings)
    assert [line for line in after if line not in before] == [
        line for line in after if "marker" in line
    ]
    assert [line for line in before if line not in after] == []
    assert await queued_jobs(settings) == jobs_before
