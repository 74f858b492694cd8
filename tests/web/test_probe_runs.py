"""Manual triggers through the real queue: ``/jobs/probe``, ``/tasks/run``,
``/tasks/run/background`` (an in-process worker probes local HTTP targets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.helpers import collect_events, running_worker, wait_for
from tests.webapp import WebApp, serve_app, served
from web.cycles import CycleRunner


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    async with served(settings, engine, worker=True) as app:
        yield app


async def add(web: WebApp, name: str, address: str, active: bool = True) -> int:
    body = {"name": name, "address": address, "is_active": active, "timeout_seconds": 2}
    r = await web.client.post("/devices", json=body)
    assert r.status_code == 201
    device_id: int = r.json()["id"]
    return device_id


async def test_probe_jobs_are_enqueued_and_answered_with_their_ids(
    web: WebApp, http_target: str
) -> None:
    up = await add(web, "up", f"{http_target}/ok")
    down = await add(web, "down", f"{http_target}/fail")
    await add(web, "off", f"{http_target}/ok", active=False)

    r = await web.client.post("/jobs/probe", json={})
    assert r.status_code == 202
    body = r.json()
    assert body["complete"] is False and body["results"] is None
    assert {j["device_id"] for j in body["jobs"]} == {up, down}  # every active device
    assert all(j["task_id"] and j["run_key"].startswith("manual:") for j in body["jobs"])

    async def stored() -> bool:
        checks = [(await web.client.get(f"/devices/{d}/checks")).json() for d in (up, down)]
        keys = {c["run_key"] for rows in checks for c in rows}
        return {j["run_key"] for j in body["jobs"]} <= keys

    await wait_for(stored, what="the enqueued probes' results")


async def test_probe_with_wait_returns_the_stored_results(web: WebApp, http_target: str) -> None:
    up = await add(web, "up", f"{http_target}/ok")
    down = await add(web, "down", f"{http_target}/status/503")
    off = await add(web, "off", f"{http_target}/ok", active=False)

    r = await web.client.post(
        "/jobs/probe", params={"wait": "true"}, json={"device_ids": [down, up, off, up]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True
    assert [j["device_id"] for j in body["jobs"]] == [down, up, off]  # duplicates once
    results = {c["device_id"]: c for c in body["results"]}
    assert results[up]["status_up"] is True and results[up]["status_code"] == 200
    assert results[down]["status_up"] is False and results[down]["status_code"] == 503
    assert results[off]["status_up"] is True  # named explicitly: probed although inactive
    assert {c["source"] for c in body["results"]} == {"manual"}
    assert {c["run_key"] for c in body["results"]} == {j["run_key"] for j in body["jobs"]}


async def test_probing_an_unknown_device_is_a_404_and_enqueues_nothing(
    web: WebApp, http_target: str, settings: Settings
) -> None:
    known = await add(web, "up", f"{http_target}/ok")
    async with collect_events(settings) as events:
        r = await web.client.post("/jobs/probe", json={"device_ids": [known, 987654]})
        assert r.status_code == 404 and "987654" in r.json()["detail"]
        # a later probe's result is the only check that shows up
        r = await web.client.post("/jobs/probe?wait=true", json={"device_ids": [known]})
        assert r.json()["complete"] is True
    assert len([e for e in events if e["type"] == "check.created"]) == 1
    assert len((await web.client.get(f"/devices/{known}/checks")).json()) == 1


async def test_a_cycle_probes_every_active_device_and_announces_the_count(
    web: WebApp, http_target: str, closed_port_url: str, settings: Settings
) -> None:
    up = await add(web, "up", f"{http_target}/ok")
    gone = await add(web, "gone", closed_port_url)
    await add(web, "off", f"{http_target}/ok", active=False)

    async with collect_events(settings) as events:
        r = await web.client.post("/tasks/run")
        assert r.status_code == 200
        summary = r.json()

        async def finished() -> bool:
            return any(e["type"] == "monitor.cycle.finished" for e in events)

        await wait_for(finished, what="monitor.cycle.finished")
    assert summary["devices_checked"] == 2 and summary["devices_total"] == 2
    assert (summary["up"], summary["down"], summary["missing"]) == (1, 1, [])
    [event] = [e for e in events if e["type"] == "monitor.cycle.finished"]
    assert event["payload"]["devices_checked"] == 2
    assert event["payload"]["cycle_id"] == summary["cycle_id"]
    sources = {
        d: [c["source"] for c in (await web.client.get(f"/devices/{d}/checks")).json()]
        for d in (up, gone)
    }
    assert sources == {up: ["cycle"], gone: ["cycle"]}


async def test_a_cycle_reports_devices_whose_results_did_not_arrive_and_refuses_a_second_one(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    # No worker: the jobs wait in the queue, so the cycle runs until its timeout.
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        device = await add(web, "up", f"{http_target}/ok")
        cycles: CycleRunner = web.app.state.cycles
        first = asyncio.create_task(web.client.post("/tasks/run", params={"timeout": 1}))
        while not cycles.busy:
            await asyncio.sleep(0.01)
        second = await web.client.post("/tasks/run")
        assert second.status_code == 409 and "already running" in second.json()["detail"]
        summary = (await first).json()
    assert summary["devices_checked"] == 0 and summary["missing"] == [device]


async def test_the_background_loop_starts_once_and_runs_a_cycle(
    web: WebApp, http_target: str, settings: Settings
) -> None:
    await add(web, "up", f"{http_target}/ok")
    async with collect_events(settings) as events:
        first = await web.client.post("/tasks/run/background")
        assert first.status_code == 202
        assert first.json() == {
            "running": True,
            "already_running": False,
            "period_seconds": settings.monitor_period_seconds,
        }
        second = await web.client.post("/tasks/run/background")
        assert second.status_code == 200 and second.json()["already_running"] is True

        async def cycled() -> bool:
            return any(e["type"] == "monitor.cycle.finished" for e in events)

        await wait_for(cycled, what="the loop's first cycle")
    assert web.app.state.cycles.looping


async def test_the_background_loop_is_stopped_by_delete_and_its_state_read_by_get(
    web: WebApp, settings: Settings
) -> None:
    period = settings.monitor_period_seconds
    off = {"running": False, "already_running": False, "period_seconds": period}
    assert (await web.client.get("/tasks/run/background")).json() == off
    assert (await web.client.delete("/tasks/run/background")).json() == off  # idempotent

    assert (await web.client.post("/tasks/run/background")).status_code == 202
    on = await web.client.get("/tasks/run/background")
    assert on.status_code == 200 and on.json()["running"] is True

    stopped = await web.client.delete("/tasks/run/background")
    assert stopped.status_code == 200
    assert stopped.json() == off | {"already_running": True}
    assert not web.app.state.cycles.looping
    assert (await web.client.get("/tasks/run/background")).json() == off
    # and it starts again
    assert (await web.client.post("/tasks/run/background")).status_code == 202


async def test_a_queue_that_does_not_answer_is_a_503_and_nothing_is_reported_enqueued(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        await add(web, "up", f"{http_target}/ok")
        await broker.client.close()  # the kicking connection is gone
        r = await web.client.post("/jobs/probe", json={})
        assert r.status_code == 503 and "job queue" in r.json()["detail"]
        r = await web.client.post("/tasks/run")
        assert r.status_code == 503
