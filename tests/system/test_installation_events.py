"""Two installations on one NATS server share the seed's events subject (issue 15, item 1):
each event carries its installation's id, and each installation's feed (WebSocket, waiting
requests, schedulers) drops the other's events, while outside messages reach both as
``nats.inbound``.  Device ids collide, as they do between two fresh databases."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect

from core.natsconn import subscribe_ready
from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.events import INSTALLATION_HEADER
from storage.db import init_db, make_engine
from storage.installation import installation_id
from tests.conftest import isolated_env
from tests.dashboard_fleet import db_installation
from tests.processes import Fleetprobe
from tests.webapp import WebApp, of_type, receive_until, served


@contextlib.asynccontextmanager
async def installation(base: dict[str, str], tmp: Path, name: str) -> AsyncIterator[WebApp]:
    """One installation: its own SQLite file and instance name (so its own job queue), the
    events subject of ``base`` (shared), the web app and an in-process worker."""
    env = base | {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / f'{name}.db'}",
        "FLEETPROBE_INSTANCE": name,
    }
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    try:
        await init_db(engine)
        async with served(settings, engine, worker=True) as web:
            yield web
    finally:
        await engine.dispose()


async def add_device(web: WebApp, name: str, address: str) -> int:
    r = await web.client.post(
        "/devices", json={"name": name, "address": address, "timeout_seconds": 2}
    )
    assert r.status_code == 201, r.text
    device_id: int = r.json()["id"]
    return device_id


async def probe_and_wait(web: WebApp, device_id: int) -> str:
    """``POST /jobs/probe?wait=true`` for one device; the run key of its stored result."""
    r = await web.client.post(
        "/jobs/probe", params={"wait": "true", "timeout": "20"}, json={"device_ids": [device_id]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True, body
    run_key: str = body["jobs"][0]["run_key"]
    return run_key


async def read_until_sentinel(ws: ClientConnection, name: str) -> list[dict[str, Any]]:
    """Everything a client received up to (and with) the device.updated that renames a
    device to ``name``: sent last, so every event published before it was delivered."""
    sentinel, before = await receive_until(ws, of_type("device.updated", name=name), timeout=20)
    return [*before, sentinel]


async def test_each_installation_sees_only_its_own_events_and_both_see_outside_ones(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    base = isolated_env(nats_server.url, tmp_path)  # one events subject for both
    wire: list[Msg] = []  # what went over the shared subject, whoever sent it
    nc = await nats.connect(nats_server.url)

    async def on_wire(msg: Msg) -> None:
        wire.append(msg)

    await subscribe_ready(nc, base["EVENTS_SUBJECT"], cb=on_wire)
    try:
        async with (
            installation(base, tmp_path, "site-a") as a,
            installation(base, tmp_path, "site-b") as b,
            a.websocket() as ws_a,
            b.websocket() as ws_b,
        ):
            ours_a = a.services.installation_id
            ours_b = b.services.installation_id
            assert ours_a != ours_b
            # The same device id in both databases, different names.
            assert await add_device(a, "a-device", f"{http_target}/ok") == 1
            assert await add_device(b, "b-device", f"{http_target}/ok") == 1
            key_b = await probe_and_wait(b, 1)  # B probes its device 1: check.created id 1
            key_a = await probe_and_wait(a, 1)
            await nc.publish(base["EVENTS_SUBJECT"], b'{"hello": "both"}')  # from outside
            await nc.flush()
            for web, name in ((a, "a-done"), (b, "b-done")):
                r = await web.client.patch("/devices/1", json={"name": name})
                assert r.status_code == 200, r.text
            seen_a = await read_until_sentinel(ws_a, "a-done")
            seen_b = await read_until_sentinel(ws_b, "b-done")

            # B's events did go out on the shared subject, marked as B's.
            by_installation: dict[str, set[str]] = {}
            for msg in wire:
                if msg.headers and INSTALLATION_HEADER in msg.headers:
                    kind = json.loads(msg.data)["type"]
                    by_installation.setdefault(msg.headers[INSTALLATION_HEADER], set()).add(kind)
            for ours in (ours_a, ours_b):
                assert {"device.created", "check.created", "device.updated"} <= by_installation[
                    ours
                ]
            assert set(by_installation) == {ours_a, ours_b}

            def names(seen: list[dict[str, Any]]) -> set[str]:
                return {
                    e["payload"]["name"] for e in seen if e["type"].startswith("device.created")
                } | {e["payload"]["name"] for e in seen if e["type"] == "device.updated"}

            def run_keys(seen: list[dict[str, Any]]) -> set[str]:
                return {e["payload"]["run_key"] for e in seen if e["type"] == "check.created"}

            assert names(seen_a) == {"a-device", "a-done"}
            assert run_keys(seen_a) == {key_a}
            assert names(seen_b) == {"b-device", "b-done"}
            assert run_keys(seen_b) == {key_b}
            # Device state changes (unknown -> up) only of one's own device 1.
            for seen, key in ((seen_a, key_a), (seen_b, key_b)):
                changes = [e for e in seen if e["type"] == "device.state_changed"]
                assert changes and all(e["payload"]["run_key"] in (key, None) for e in changes)
            # The outside message reached both, as nats.inbound.
            inbound = {"type": "nats.inbound", "payload": {"hello": "both"}}
            assert inbound in seen_a and inbound in seen_b
            # Each dropped the other's, counted.
            assert a.hub.foreign > 0 and b.hub.foreign > 0
    finally:
        await nc.close()


async def test_the_feed_of_one_installation_is_read_from_its_database(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The web app's installation is its database's (the events it drops are decided by
    it), the same id every process on that database publishes with."""
    async with served(settings, engine) as web:
        assert web.services.installation_id == await installation_id(engine)
        assert web.services.events.installation == web.services.installation_id


@pytest.mark.slow
async def test_two_scheduler_processes_on_one_server_keep_their_live_feeds_apart(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    """The user's setup: two ``python scheduler.py`` (each its SQLite file, instance name
    and web port) on one NATS server and one events subject; B probes its device 1 while
    A's WebSocket client listens."""
    tag = uuid.uuid4().hex[:8]
    shared = {
        "NATS_URL": nats_server.url,
        "EMBEDDED_NATS": "false",
        "EVENTS_SUBJECT": f"t.{tag}.items.updates",  # one subject for both (the default's role)
        "LOG_LEVEL": "DEBUG",
    }
    fleet = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        fleet[name] = Fleetprobe(tmp_path / name, **shared, FLEETPROBE_INSTANCE=f"{name}{tag}")
    a, b = fleet["a"], fleet["b"]
    a.start()
    b.start()
    nc = await nats.connect(nats_server.url)
    try:
        async with connect(a.url.replace("http://", "ws://") + "/ws/items") as ws:
            async with httpx.AsyncClient(timeout=30) as http:
                # A pong comes through the hub: the client is subscribed, nothing is missed.
                await ws.send("ping")
                await receive_until(ws, of_type("pong"))
                for fp, label in ((a, "a-device"), (b, "b-device")):
                    body = {"name": label, "address": f"{http_target}/ok", "timeout_seconds": 2}
                    r = await http.post(f"{fp.url}/devices", json=body)
                    assert r.status_code == 201 and r.json()["id"] == 1, r.text
                keys = {}
                for fp, label in ((b, "b"), (a, "a")):
                    r = await http.post(
                        f"{fp.url}/jobs/probe",
                        params={"wait": "true", "timeout": "20"},
                        json={"device_ids": [1]},
                    )
                    assert r.status_code == 200 and r.json()["complete"] is True, r.text
                    keys[label] = r.json()["jobs"][0]["run_key"]
                # Every result B stored (its manual probe, and the probe of a new device).
                r = await http.get(f"{b.url}/devices/1/checks")
                b_keys = {c["run_key"] for c in r.json()}
                assert keys["b"] in b_keys
                await nc.publish(shared["EVENTS_SUBJECT"], b'{"hello": "both"}')
                await nc.flush()
                r = await http.patch(f"{a.url}/devices/1", json={"name": "a-done"})
                assert r.status_code == 200, r.text
            seen = await read_until_sentinel(ws, "a-done")
        kinds = [e["type"] for e in seen]
        assert "check.created" in kinds and "device.created" in kinds
        a_keys = {e["payload"]["run_key"] for e in seen if e["type"] == "check.created"}
        assert keys["a"] in a_keys and not a_keys & b_keys
        assert all(
            e["payload"].get("name") != "b-device" for e in seen if e["type"].startswith("device.")
        )
        assert {"type": "nats.inbound", "payload": {"hello": "both"}} in seen
    finally:
        await nc.close()
        b.stop()
        a.stop()
    # A's process dropped B's events, each said in a DEBUG line naming B; B's dropped A's.
    ids = {name: db_installation(fp.tmp / "monitoring.db") for name, fp in fleet.items()}
    for fp, other in ((a, "b"), (b, "a")):
        log = (fp.tmp / "scheduler-1.log").read_text()
        dropped = [line for line in log.splitlines() if "another installation dropped" in line]
        assert dropped and all(f"installation={ids[other]}" in line for line in dropped), log
        assert "Traceback" not in log
