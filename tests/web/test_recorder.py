"""``/recorder`` over real HTTP: commands through the queue to the reference recorder (or
a broken one), the status codes that say what happened, history, schedules, and the
``recorder.command`` event on the WebSocket feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.recorder.scheduler import RecorderScheduler
from jobs.recorder.simulator import RecorderSimulator
from tests.helpers import collect_events, running_worker, wait_for
from tests.recorder_helpers import fake_recorder, reply_bytes, running_simulator
from tests.webapp import WebApp, of_type, receive_until, serve_app, served
from web import recorder as recorder_routes


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    async with served(settings, engine, worker=True) as app:
        yield app


@pytest.fixture
async def recorder(settings: Settings) -> AsyncIterator[RecorderSimulator]:
    async with running_simulator(settings) as simulator:
        yield simulator


# -- commands ----------------------------------------------------------------------------


async def test_start_status_stop_through_the_queue_answer_the_stored_results(
    web: WebApp, recorder: RecorderSimulator
) -> None:
    r = await web.client.post(
        "/recorder/cam1/start", json={"segment_time": 60, "vid_byterate": 2500}
    )
    assert r.status_code == 200, r.text
    started = r.json()
    assert (started["task_id"], started["cmd"], started["msg_status"], started["app_status"]) == (
        "cam1",
        "start",
        "success",
        "started",
    )
    assert started["payload"] == {
        "segment_time": 60.0,
        "snd_source": "pulsesrc01",
        "snd_byterate": 96,
        "vid_stream": "main",
        "vid_byterate": 2500,
    }
    assert started["reply_payload"]["file_path"] == "/mnt/rec001.wav"
    assert started["reply_payload"]["at_stopped"] is None
    assert started["reply_payload"]["at_started"].endswith("Z")
    assert started["source"] == "api" and started["error_kind"] is None

    r = await web.client.post("/recorder/cam1/status")
    assert r.status_code == 200 and r.json()["app_status"] == "started"
    assert r.json()["payload"] is None
    asked = r.json()

    r = await web.client.post("/recorder/cam1/stop")  # no body: segment_time 300.0
    assert r.status_code == 200
    stopped = r.json()
    assert stopped["payload"] == {"segment_time": 300.0}
    assert stopped["app_status"] == "stopped"
    assert stopped["reply_payload"]["at_stopped"].endswith("Z")

    r = await web.client.get("/recorder/cam1/commands")
    assert r.status_code == 200
    assert [c["cmd"] for c in r.json()] == ["stop", "status", "start"]  # newest first
    r = await web.client.get("/recorder/cam1/commands", params={"limit": 1})
    assert [c["id"] for c in r.json()] == [stopped["id"]]
    assert (await web.client.get("/recorder/other/commands")).json() == []
    assert recorder.handled == 3
    assert asked["cmd"] == "status"


async def test_get_status_answers_the_last_known_status_and_sends_nothing(
    web: WebApp, recorder: RecorderSimulator
) -> None:
    r = await web.client.get("/recorder/cam9/status")
    assert r.status_code == 404 and "POST /recorder/cam9/status" in r.json()["detail"]
    started = (await web.client.post("/recorder/cam9/start", json={})).json()

    r = await web.client.get("/recorder/cam9/status")
    assert r.status_code == 200 and r.json() == started
    stopped = (await web.client.post("/recorder/cam9/stop", json={})).json()
    assert stopped["app_status"] == "stopped"
    assert (await web.client.get("/recorder/cam9/status")).json() == stopped
    # nothing was sent, nothing stored by the GETs
    assert recorder.handled == 2
    history = (await web.client.get("/recorder/cam9/commands")).json()
    assert [c["cmd"] for c in history] == ["stop", "start"]


async def test_a_refused_command_is_a_200_with_msg_status_error(
    web: WebApp, recorder: RecorderSimulator
) -> None:
    r = await web.client.post("/recorder/cam2/stop", json={})
    assert r.status_code == 200
    assert (r.json()["msg_status"], r.json()["reason"]) == ("error", "not recording")


async def test_the_command_event_reaches_websocket_clients(
    web: WebApp, recorder: RecorderSimulator
) -> None:
    async with web.websocket("types=recorder.command") as ws:
        r = await web.client.post("/recorder/cam3/start", json={})
        assert r.status_code == 200
        event, _ = await receive_until(ws, of_type("recorder.command", task_id="cam3"))
    assert event["payload"] == r.json()


@pytest.mark.timeout(30)
async def test_no_recorder_running_is_a_503_at_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    # A 60 s NATS_TIMEOUT: waiting for it would trip this test's 30 s limit.
    settings = settings.model_copy(update={"nats_timeout": 60.0})
    async with running_worker(settings) as broker, serve_app(settings, engine, broker) as web:
        r = await web.client.post("/recorder/cam5/status")
    assert r.status_code == 503
    body = r.json()
    assert "recorder not running" in body["detail"]
    assert body["result"]["error_kind"] == "no_responder"


def never(command: dict[str, Any]) -> bytes | None:
    return None


@pytest.mark.parametrize(
    ("answer", "status", "kind"),
    [
        (never, 504, "timeout"),
        (lambda c: b"not json", 502, "invalid_reply"),
        (lambda c: reply_bytes(c, task_id="someone-else"), 502, "invalid_reply"),
    ],
    ids=["timeout", "not-json", "other-task"],
)
async def test_a_broken_recorder_answers_504_or_502_with_the_stored_result(
    settings: Settings, engine: AsyncEngine, answer: Any, status: int, kind: str
) -> None:
    settings = settings.model_copy(update={"nats_timeout": 0.3})
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, answer),
        running_worker(settings) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        r = await web.client.post("/recorder/cam6/start", json={})
        history = (await web.client.get("/recorder/cam6/commands")).json()
    assert r.status_code == status
    body = r.json()
    assert body["detail"].startswith(f"{kind}: ")
    assert body["result"]["error_kind"] == kind
    assert [c["id"] for c in history] == [body["result"]["id"]]


async def test_no_result_in_time_is_a_504_naming_the_run_key(
    settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_routes, "WAIT_MARGIN_SECONDS", 0.2)
    settings = settings.model_copy(update={"nats_timeout": 0.3})
    # no worker: the job waits in the queue
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        r = await web.client.post("/recorder/cam7/status")
    assert r.status_code == 504
    assert "run_key=recorder:api:" in r.json()["detail"]
    assert r.json()["result"] is None


# -- schedules ---------------------------------------------------------------------------


async def create(web: WebApp, **body: Any) -> dict[str, Any]:
    r = await web.client.post("/recorder/schedules", json=body)
    assert r.status_code == 201, r.text
    schedule: dict[str, Any] = r.json()
    assert r.headers["location"] == f"/recorder/schedules/{schedule['id']}"
    return schedule


async def test_schedules_are_created_read_changed_and_deleted_with_events(
    web: WebApp, settings: Settings
) -> None:
    async with collect_events(settings) as events:
        start = await create(
            web, task_id="cam1", cmd="start", cron="0  8 * * 1-5", payload={"segment_time": 600}
        )
        assert start["cron"] == "0 8 * * 1-5" and start["interval_seconds"] is None
        assert start["payload"]["segment_time"] == 600.0
        assert start["payload"]["vid_byterate"] == 2000  # the defaults, filled in
        assert start["next_run_at"].endswith("08:00:00Z")
        status = await create(
            web, task_id="cam1", cmd="status", interval_seconds=60, payload={"ignored": True}
        )
        assert status["payload"] is None
        other = await create(web, task_id="cam2", cmd="stop", cron="0 18 * * *", is_active=False)
        assert other["next_run_at"] is None

        listed = (await web.client.get("/recorder/schedules")).json()
        assert [s["id"] for s in listed] == [start["id"], status["id"], other["id"]]
        only = (
            await web.client.get(
                "/recorder/schedules", params={"task_id": "cam1", "is_active": "true"}
            )
        ).json()
        assert [s["id"] for s in only] == [start["id"], status["id"]]
        got = await web.client.get(f"/recorder/schedules/{start['id']}")
        assert got.status_code == 200 and got.json() == start

        # interval given: the cron goes
        r = await web.client.patch(
            f"/recorder/schedules/{start['id']}", json={"interval_seconds": 3600}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["cron"], r.json()["interval_seconds"]) == (None, 3600)
        assert r.json()["next_run_at"].endswith(":00:00Z")
        # another command without a payload: that command's defaults
        r = await web.client.patch(f"/recorder/schedules/{start['id']}", json={"cmd": "stop"})
        assert r.json()["payload"] == {"segment_time": 300.0}
        # nothing changed: nothing announced
        r = await web.client.patch(f"/recorder/schedules/{start['id']}", json={"cmd": "stop"})
        assert r.status_code == 200

        r = await web.client.delete(f"/recorder/schedules/{start['id']}")
        assert r.status_code == 204
        assert (await web.client.get(f"/recorder/schedules/{start['id']}")).status_code == 404

        async def all_announced() -> bool:
            return len(events) >= 6

        await wait_for(all_announced, what="schedule events")
    assert [(e["type"], e["payload"]["id"]) for e in events] == [
        ("recorder.schedule.created", start["id"]),
        ("recorder.schedule.created", status["id"]),
        ("recorder.schedule.created", other["id"]),
        ("recorder.schedule.updated", start["id"]),
        ("recorder.schedule.updated", start["id"]),
        ("recorder.schedule.deleted", start["id"]),
    ]


async def test_unknown_schedules_are_404(web: WebApp) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        r = await web.client.request(method, "/recorder/schedules/404404", json={})
        assert r.status_code == 404 and "404404" in r.json()["detail"]


async def test_a_schedule_created_over_rest_fires_without_a_restart(
    web: WebApp, settings: Settings, engine: AsyncEngine, recorder: RecorderSimulator
) -> None:
    nc = await nats.connect(settings.nats_url)
    scheduler = RecorderScheduler(
        settings, web.services.broker, engine, nc, installation=web.services.installation_id
    )
    await scheduler.start()
    try:
        schedule = await create(web, task_id="cam9", cmd="status", interval_seconds=1)

        async def fired_twice() -> bool:
            r = await web.client.get("/recorder/cam9/commands")
            return len(r.json()) >= 2

        await wait_for(fired_twice, timeout=20, what="two scheduled commands")
        await web.client.delete(f"/recorder/schedules/{schedule['id']}")

        async def dropped() -> bool:
            return scheduler.registered == {}

        await wait_for(dropped, what="the deleted schedule to be dropped")
    finally:
        await scheduler.stop()
        await nc.close()
    history = (await web.client.get("/recorder/cam9/commands")).json()
    assert all(c["source"] == "schedule" and c["schedule_id"] == schedule["id"] for c in history)
    assert all(c["run_key"].startswith(f"recorder:{schedule['id']}:") for c in history)


async def test_the_recorder_endpoints_are_in_the_openapi_document(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/recorder/{task_id}/start"]["post"]["responses"]) == {
        "200",
        "400",  # a Host not in ALLOWED_HOSTS (web/guards.py), on every operation
        "403",  # a foreign Origin (web/guards.py), on every operation that writes
        "413",  # the body limit (web/limits.py), on every operation with a body
        "415",  # a body not sent as JSON (web/guards.py), on every operation with a body
        "422",
        "502",
        "503",
        "504",
    }
    assert "get" in paths["/recorder/{task_id}/status"]
    assert "get" in paths["/recorder/{task_id}/commands"]
    assert {"get", "post"} <= set(paths["/recorder/schedules"])
    assert {"get", "patch", "delete"} <= set(paths["/recorder/schedules/{schedule_id}"])
    start_body = spec["components"]["schemas"]["StartBody"]["properties"]
    assert start_body["snd_source"]["default"] == "pulsesrc01"
