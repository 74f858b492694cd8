"""Bad input through the real server: every refusal names the field, and a refused request
changes nothing: no row, no event, no queued job."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

import nats

from core.settings import Settings
from tests.helpers import collect_events, wait_for
from tests.webapp import WebApp
from web.limits import MAX_BODY_BYTES

ADDRESS = "http://127.0.0.1:9/"
DEVICE = {"name": "x", "address": ADDRESS}
SCHEDULE = {"task_id": "cam1", "cmd": "start"}


class Refused(NamedTuple):
    method: str
    path: str  # {device} and {schedule}: an existing device and recorder schedule
    body: Any  # a JSON value, or raw bytes
    loc: list[str | int]  # where the refusal must point
    says: str = ""  # part of that issue's message, where the reason matters


REFUSED: list[Refused] = [
    # not JSON, or not an object
    Refused("POST", "/devices", b'{"name": "x",', ["body"], "Invalid JSON"),
    Refused("POST", "/devices", b"not json", ["body"], "Invalid JSON"),
    Refused("POST", "/devices", b'{"name": "x",}', ["body"], "Invalid JSON"),
    Refused("POST", "/devices", "\u00e9".encode("latin-1"), ["body"], "Invalid JSON"),
    Refused("POST", "/devices", b"[]", ["body"]),
    Refused("PATCH", "/devices/{device}", b"\xff\xfe", ["body"], "Invalid JSON"),
    # devices
    Refused("POST", "/devices", {"name": 5, "address": ADDRESS}, ["body", "name"]),
    Refused("POST", "/devices", {"address": ADDRESS}, ["body", "name"]),
    Refused("POST", "/devices", {"name": "x"}, ["body", "address"]),
    Refused("POST", "/devices", DEVICE | {"name": ""}, ["body", "name"]),
    Refused("POST", "/devices", DEVICE | {"name": "   "}, ["body", "name"]),
    Refused("POST", "/devices", DEVICE | {"name": "n" * 201}, ["body", "name"]),
    Refused("POST", "/devices", DEVICE | {"colour": "red"}, ["body", "colour"]),
    Refused("POST", "/devices", DEVICE | {"id": 7}, ["body", "id"]),
    Refused("POST", "/devices", {"name": "x", "address": "ftp://x"}, ["body", "address"],
            "use http, https, tcp, tls, dns or recorder"),
    Refused("POST", "/devices", DEVICE | {"address": "example.com"}, ["body", "address"],
            "has no scheme; write it as http://, https://, tcp://"),
    Refused("POST", "/devices", DEVICE | {"address": "http://"}, ["body", "address"],
            "not a valid URL"),
    Refused("POST", "/devices", DEVICE | {"address": "http://exa mple.com"}, ["body", "address"]),
    Refused("POST", "/devices", DEVICE | {"is_active": "true"}, ["body", "is_active"]),
    Refused("POST", "/devices", DEVICE | {"interval_seconds": 0}, ["body", "interval_seconds"]),
    Refused("POST", "/devices", DEVICE | {"interval_seconds": 10**9},
            ["body", "interval_seconds"]),
    Refused("POST", "/devices", DEVICE | {"interval_seconds": 1.5}, ["body", "interval_seconds"]),
    Refused("POST", "/devices", DEVICE | {"timeout_seconds": 0}, ["body", "timeout_seconds"]),
    # one bound, one message: this deployment's PROBE_MAX_TIMEOUT_SECONDS (60), whether
    # above the static MAX_TIMEOUT_SECONDS (120) or not
    Refused("POST", "/devices", DEVICE | {"timeout_seconds": 1000}, ["body", "timeout_seconds"],
            "must be at most 60 (PROBE_MAX_TIMEOUT_SECONDS)"),
    Refused("POST", "/devices", DEVICE | {"timeout_seconds": 90}, ["body", "timeout_seconds"],
            "must be at most 60 (PROBE_MAX_TIMEOUT_SECONDS)"),
    Refused("POST", "/devices", DEVICE | {"timeout_seconds": 61}, ["body", "timeout_seconds"],
            "PROBE_MAX_TIMEOUT_SECONDS"),
    Refused("PATCH", "/devices/{device}", {"name": "renamed", "colour": "red"},
            ["body", "colour"]),
    Refused("PATCH", "/devices/{device}", {"name": "renamed", "timeout_seconds": 61},
            ["body", "timeout_seconds"], "PROBE_MAX_TIMEOUT_SECONDS"),
    Refused("PATCH", "/devices/{device}", {"is_active": False, "name": None}, ["body", "name"]),
    Refused("PATCH", "/devices/{device}", {"address": None}, ["body", "address"]),
    Refused("PATCH", "/devices/{device}", {"is_active": None}, ["body", "is_active"]),
    Refused("PATCH", "/devices/{device}", {"address": "mailto:x@example.com"},
            ["body", "address"]),
    Refused("PATCH", "/devices/{device}", {"created_at": "2020-01-01T00:00:00Z"},
            ["body", "created_at"]),
    Refused("PATCH", "/devices/{device}", {"name": "ok", "interval_seconds": -1},
            ["body", "interval_seconds"]),
    # check kinds and health settings (docs/check-kinds.md, docs/conditions.md)
    Refused("POST", "/devices", DEVICE | {"address": "tcp://db.local"}, ["body", "address"],
            "tcp:// needs a port"),
    Refused("POST", "/devices", DEVICE | {"address": "dns://x.test?type=XX"}, ["body", "address"],
            "type XX is not supported"),
    Refused("POST", "/devices", DEVICE | {"address": "dns://x.test?server=dns.google"},
            ["body", "address"], "server must be an IP address"),
    Refused("POST", "/devices", DEVICE | {"address": "recorder://a/b"}, ["body", "address"],
            "takes only a task id"),
    Refused("POST", "/devices", DEVICE | {"conditions": ["[STATUS] == 200", "[STATU] == 200"]},
            ["body", "conditions", 1], "unknown placeholder [STATU] at 0"),
    Refused("POST", "/devices", DEVICE | {"conditions": ["[STATUS] == OK"]},
            ["body", "conditions", 0], "[STATUS] is a number, got 'OK' at 12"),
    Refused("POST", "/devices", DEVICE | {"conditions": [""]}, ["body", "conditions", 0]),
    Refused("POST", "/devices", DEVICE | {"conditions": "[STATUS] == 200"},
            ["body", "conditions"]),
    Refused("POST", "/devices", DEVICE | {"conditions": ["[STATUS] < 500"] * 21},
            ["body", "conditions"]),
    Refused("POST", "/devices", DEVICE | {"conditions": ["[DNS_RCODE] == NOERROR"]},
            ["body", "conditions", 0], "[DNS_RCODE] is not filled by a http:// check"),
    Refused("POST", "/devices", DEVICE | {"conditions": ["[CERTIFICATE_EXPIRATION] > 72h"]},
            ["body", "conditions", 0], "[CERTIFICATE_EXPIRATION] is not filled by a http://"),
    Refused("POST", "/devices", {"name": "x", "address": "tcp://db.local:5432",
            "conditions": ["[CONNECTED] == true", "[STATUS] == 200"]},
            ["body", "conditions", 1], "[STATUS] is not filled by a tcp:// check"),
    Refused("POST", "/devices", DEVICE | {"degraded_when": ["[RESPONSE_TIME] > fast"]},
            ["body", "degraded_when", 0]),
    Refused("POST", "/devices", DEVICE | {"degraded_when": ["[APP_STATUS] == started"]},
            ["body", "degraded_when", 0], "[APP_STATUS] is not filled"),
    Refused("POST", "/devices", DEVICE | {"failure_threshold": 0}, ["body", "failure_threshold"]),
    Refused("POST", "/devices", DEVICE | {"failure_threshold": 101},
            ["body", "failure_threshold"]),
    Refused("POST", "/devices", DEVICE | {"success_threshold": None},
            ["body", "success_threshold"]),
    Refused("POST", "/devices", DEVICE | {"retry_interval_seconds": 0},
            ["body", "retry_interval_seconds"]),
    Refused("POST", "/devices", DEVICE | {"interval_seconds": 60, "retry_interval_seconds": 61},
            ["body", "retry_interval_seconds"], "at most the interval (60)"),
    Refused("POST", "/devices", DEVICE | {"method": "BREW"}, ["body", "method"]),
    Refused("POST", "/devices", DEVICE | {"method": "get"}, ["body", "method"]),
    Refused("POST", "/devices", DEVICE | {"headers": ["X-A: b"]}, ["body", "headers"]),
    Refused("POST", "/devices", DEVICE | {"headers": {"X-A": 1}}, ["body", "headers", "X-A"]),
    Refused("POST", "/devices", DEVICE | {"headers": {"bad name": "v"}}, ["body", "headers"],
            "not an HTTP token"),
    Refused("POST", "/devices", DEVICE | {"headers": {"X-A": "a\r\nX-B: c"}},
            ["body", "headers"], "control characters"),
    Refused("POST", "/devices", DEVICE | {"headers": {"Content-Length": "5"}},
            ["body", "headers"], "set by the HTTP client"),
    Refused("POST", "/devices", DEVICE | {"headers": {f"X-{i}": "v" for i in range(31)}},
            ["body", "headers"]),
    Refused("POST", "/devices", DEVICE | {"body": "b" * (16 * 1024 + 1)}, ["body", "body"]),
    Refused("POST", "/devices", DEVICE | {"follow_redirects": "no"}, ["body", "follow_redirects"]),
    Refused("POST", "/devices", DEVICE | {"verify_tls": None}, ["body", "verify_tls"]),
    Refused("POST", "/devices", DEVICE | {"notify_on": ["down", "sideways"]},
            ["body", "notify_on", 1]),
    Refused("POST", "/devices", DEVICE | {"notify_on": ["down", "down"]}, ["body", "notify_on"],
            "must not repeat"),
    Refused("POST", "/devices", DEVICE | {"reminder_every_minutes": 3},
            ["body", "reminder_every_minutes"], "REMINDER_MIN_MINUTES=5"),
    Refused("POST", "/devices", DEVICE | {"reminder_every_minutes": -1},
            ["body", "reminder_every_minutes"]),
    Refused("POST", "/devices", DEVICE | {"channel_ids": [0]}, ["body", "channel_ids", 0]),
    Refused("POST", "/devices", DEVICE | {"channel_ids": ["1"]}, ["body", "channel_ids", 0]),
    Refused("POST", "/devices", DEVICE | {"channel_ids": [1, 1]}, ["body", "channel_ids"]),
    Refused("POST", "/devices", DEVICE | {"snoozed_until": "2030-01-01T00:00"},
            ["body", "snoozed_until"]),
    Refused("POST", "/devices", DEVICE | {"public": 1}, ["body", "public"]),
    Refused("POST", "/devices", DEVICE | {"public_details": "yes"}, ["body", "public_details"]),
    # {device} is an http:// device with no conditions of its own
    Refused("PATCH", "/devices/{device}", {"conditions": ["[MSG_STATUS] == success"]},
            ["body", "conditions", 0], "[MSG_STATUS] is not filled by a http:// check"),
    Refused("PATCH", "/devices/{device}", {"failure_threshold": None},
            ["body", "failure_threshold"]),
    Refused("PATCH", "/devices/{device}",
            {"address": "dns://x.test", "conditions": ["[STATUS] == 200"]},
            ["body", "conditions", 0], "[STATUS] is not filled by a dns:// check"),
    Refused("PATCH", "/devices/{device}", {"retry_interval_seconds": 3601},
            ["body", "retry_interval_seconds"], "at most the interval (3600)"),
    Refused("PATCH", "/devices/{device}", {"reminder_every_minutes": 1},
            ["body", "reminder_every_minutes"]),
    # POST /devices/validate refuses what POST /devices does
    Refused("POST", "/devices/validate", DEVICE | {"address": "ftp://x"}, ["body", "address"]),
    Refused("POST", "/devices/validate", DEVICE | {"conditions": ["[STATU] == 200"]},
            ["body", "conditions", 0], "unknown placeholder [STATU] at 0"),
    Refused("POST", "/devices/validate", DEVICE | {"timeout_seconds": 61},
            ["body", "timeout_seconds"], "PROBE_MAX_TIMEOUT_SECONDS"),
    Refused("POST", "/devices/validate", {"name": "x", "address": "tcp://a:1",
            "degraded_when": ["[BODY] == x"]}, ["body", "degraded_when", 0], "[BODY]"),
    Refused("GET", "/devices?limit=0", None, ["query", "limit"]),
    Refused("GET", "/devices?limit=100000", None, ["query", "limit"]),
    Refused("GET", "/devices?limit=ten", None, ["query", "limit"]),
    Refused("GET", "/devices?offset=-1", None, ["query", "offset"]),
    Refused("GET", "/devices?is_active=maybe", None, ["query", "is_active"]),
    # a path segment that is not an id names the parameter (not a bare 404)
    Refused("GET", "/devices/abc", None, ["path", "device_id"], "valid integer"),
    Refused("GET", "/devices/-1", None, ["path", "device_id"], "greater than or equal to 0"),
    Refused("PATCH", "/devices/abc", {"name": "x"}, ["path", "device_id"]),
    Refused("DELETE", "/devices/1.5", None, ["path", "device_id"]),
    Refused("GET", "/devices/abc/checks", None, ["path", "device_id"]),
    Refused("POST", "/devices/-1/checks", {"status_up": True}, ["path", "device_id"]),
    Refused("GET", "/recorder/schedules/abc", None, ["path", "schedule_id"]),
    # checks
    Refused("POST", "/devices/{device}/checks", {}, ["body", "status_up"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": "yes"}, ["body", "status_up"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "latency_ms": -1},
            ["body", "latency_ms"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "status_code": 42},
            ["body", "status_code"]),
    Refused("POST", "/devices/{device}/checks",
            {"status_up": True, "checked_at": "2026-01-01T00:00"}, ["body", "checked_at"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "checked_at": "yesterday"},
            ["body", "checked_at"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "error": "e" * 501},
            ["body", "error"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "run_key": "mine"},
            ["body", "run_key"]),
    Refused("GET", "/devices/{device}/checks?limit=x", None, ["query", "limit"]),
    Refused("GET", "/devices/{device}/checks?limit=0", None, ["query", "limit"]),
    Refused("GET", "/devices/{device}/checks?limit=1001", None, ["query", "limit"]),
    # uptime and status
    Refused("GET", "/devices/{device}/uptime?windows=90m", None, ["query", "windows"],
            "'90m' is not a window"),
    Refused("GET", "/devices/{device}/uptime?windows=24h,401d", None, ["query", "windows"],
            "longer than the longest window, 400d"),
    Refused("GET", "/devices/{device}/uptime?windows=", None, ["query", "windows"],
            "no window"),
    Refused("GET", "/devices/{device}/uptime?windows=7d,7d", None, ["query", "windows"],
            "given twice"),
    Refused("GET", f"/devices/{2**63}/uptime", None, ["path", "device_id"]),
    Refused("GET", "/status?limit=0", None, ["query", "limit"]),
    Refused("GET", "/status?limit=1001", None, ["query", "limit"]),
    Refused("GET", "/status?offset=-1", None, ["query", "offset"]),
    # probe jobs and cycles
    Refused("POST", "/jobs/probe", {"device_ids": ["1"]}, ["body", "device_ids", 0]),
    Refused("POST", "/jobs/probe", {"device_ids": [0]}, ["body", "device_ids", 0]),
    Refused("POST", "/jobs/probe", {"device_ids": "all"}, ["body", "device_ids"]),
    Refused("POST", "/jobs/probe", {"devices": [1]}, ["body", "devices"]),
    Refused("POST", "/jobs/probe?wait=maybe", {}, ["query", "wait"]),
    Refused("POST", "/jobs/probe?timeout=0", {}, ["query", "timeout"]),
    Refused("POST", "/jobs/probe?timeout=301", {}, ["query", "timeout"]),
    Refused("POST", "/tasks/run?timeout=-1", None, ["query", "timeout"]),
    # recorder schedules
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cmd": "explode", "interval_seconds": 60},
            ["body", "cmd"], "'start', 'stop' or"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cron": "61 * * * *"}, ["body", "cron"],
            "the last value (61) is higher than the maximum value (59)"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cron": "0 8 * *"}, ["body", "cron"],
            "has 4 fields; expected 5"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cron": "0 0 31 2 *"}, ["body", "cron"],
            "never fires"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cron": "0 8 * * 9"}, ["body", "cron"],
            "outside 0-7"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"cron": "* * * * *", "interval_seconds": 60},
            ["body"], "exactly one of cron and interval_seconds"),
    Refused("POST", "/recorder/schedules", SCHEDULE, ["body"],
            "exactly one of cron and interval_seconds"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"interval_seconds": 0},
            ["body", "interval_seconds"], "greater than or equal to 1"),
    Refused("POST", "/recorder/schedules",
            SCHEDULE | {"interval_seconds": 60, "payload": {"vid_byterate": "high"}},
            ["body", "payload"], "invalid start payload: vid_byterate"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"interval_seconds": 60, "task_id": ""},
            ["body", "task_id"], "at least 1"),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"interval_seconds": 60, "when": "now"},
            ["body", "when"], "Extra inputs"),
    # {schedule} is a "status" schedule every 60 s
    Refused("PATCH", "/recorder/schedules/{schedule}", {"is_active": False, "interval_seconds": 0},
            ["body", "interval_seconds"]),
    Refused("PATCH", "/recorder/schedules/{schedule}", {"is_active": False, "when": "now"},
            ["body", "when"]),
    Refused("PATCH", "/recorder/schedules/{schedule}",
            {"cron": "0 8 * * 1-5", "interval_seconds": 60}, ["body"], "exactly one"),
    Refused("PATCH", "/recorder/schedules/{schedule}", {"cron": "bad"}, ["body", "cron"],
            "has 1 fields"),
    Refused("PATCH", "/recorder/schedules/{schedule}", {"cmd": None}, ["body", "cmd"],
            "may not be null"),
    Refused("PATCH", "/recorder/schedules/{schedule}",
            {"cmd": "start", "payload": {"segment_time": -1}}, ["body", "payload"],
            "segment_time"),
    # recorder commands
    Refused("POST", "/recorder/cam1/start", {"segment_time": "300"}, ["body", "segment_time"]),
    Refused("POST", "/recorder/cam1/start", {"segment_time": None}, ["body", "segment_time"]),
    Refused("POST", "/recorder/cam1/start", {"snd_byterate": 0}, ["body", "snd_byterate"]),
    Refused("POST", "/recorder/cam1/start", {"vid_bitrate": 1}, ["body", "vid_bitrate"]),
    Refused("POST", "/recorder/cam1/stop", {"segment_time": 300, "loud": True}, ["body", "loud"]),
    Refused("GET", "/recorder/cam1/commands?limit=1001", None, ["query", "limit"]),
    # NUL: PostgreSQL cannot store it (a 500 there before it was refused)
    Refused("POST", "/devices", {"name": "a\x00b", "address": ADDRESS}, ["body", "name"]),
    Refused("POST", "/devices/{device}/checks", {"status_up": True, "error": "\x00"},
            ["body", "error"]),
    Refused("POST", "/recorder/schedules", SCHEDULE | {"interval_seconds": 60,
            "payload": {"snd_source": "pulse\x00"}}, ["body", "payload", "snd_source"]),
    Refused("POST", "/recorder/cam1/start", {"vid_stream": "\x00"}, ["body", "vid_stream"]),
    Refused("GET", "/recorder/cam%001/status", None, ["path", "task_id"]),
    Refused("GET", "/recorder/schedules?task_id=cam%00", None, ["query", "task_id"]),
    # path parameters past their declared bounds (BIGINT ids, 128-character task ids)
    Refused("GET", f"/devices/{2**70}", None, ["path", "device_id"]),
    Refused("DELETE", f"/devices/{2**63}", None, ["path", "device_id"]),
    Refused("GET", f"/recorder/schedules/{2**63}", None, ["path", "schedule_id"]),
    Refused("POST", f"/recorder/{'x' * 129}/start", {}, ["path", "task_id"]),
    Refused("GET", f"/recorder/{'x' * 129}/commands", None, ["path", "task_id"]),
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
    for method, path, body, loc, says in REFUSED:
        r = await request(web, method, path.format(**ids), body)
        assert r.status_code == 422, (method, path, body, r.text)
        issues = r.json()["detail"]
        assert any(i["loc"] == loc and says in i["msg"] for i in issues), (method, path, issues)
        assert all(issue["msg"] and issue["type"] for issue in issues)


async def test_a_refused_request_writes_nothing_announces_nothing_and_queues_nothing(
    web: WebApp, settings: Settings
) -> None:
    ids = await existing(web)
    before, jobs_before = database_dump(settings), await queued_jobs(settings)
    statuses: list[int] = []
    async with collect_events(settings) as events:
        for method, path, body, *_ in REFUSED:
            r = await request(web, method, path.format(**ids), body)
            statuses.append(r.status_code)
        big = b'{"name": "big", "address": "http://127.0.0.1:9/"' + b" " * MAX_BODY_BYTES + b"}"
        for method, path in (("POST", "/devices"), ("PATCH", f"/devices/{ids['device']}")):
            statuses.append((await request(web, method, path, big)).status_code)
        statuses.append((await web.client.patch("/devices/999", json={"name": "x"})).status_code)
        statuses.append((await web.client.delete("/recorder/schedules/999")).status_code)
        # a request that does go through, last: its event shows the subscription worked
        marker = await web.client.post("/devices", json={"name": "marker", "address": ADDRESS})

        async def announced() -> bool:
            return bool(events)

        await wait_for(announced, what="the marker's event")
    assert statuses == [422] * len(REFUSED) + [413, 413, 404, 404]
    assert [e["payload"]["name"] for e in events] == ["marker"]
    after = database_dump(settings)
    # The marker device and its health row (unknown) are all that was written.
    health = f'INSERT INTO "device_health" VALUES({marker.json()["id"]},'
    assert [line for line in after if line not in before] == [
        line for line in after if "marker" in line or line.startswith(health)
    ]
    assert [line for line in before if line not in after] == []
    assert await queued_jobs(settings) == jobs_before
