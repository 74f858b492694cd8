"""``/ws/items`` with a real WebSocket client: events caused by REST calls and by a worker,
outside NATS messages, ping/pong/echo, filters, ticks, and a client that never reads."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.settings import Settings
from jobs.events import EVENT_TYPES
from tests.helpers import running_worker, wait_for
from tests.webapp import WebApp, of_type, receive_until, serve_app, served
from web.hub import SLOW_CLIENT_CLOSE, EventFilter, FilterError, Subscriber
from web.limits import WS_MAX_MESSAGE_BYTES
from web.ws import close_reason

DEVICE = {"name": "edge", "address": "http://127.0.0.1:9/"}


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    async with served(settings, engine, worker=True) as app:
        yield app


def small_buffer_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def recv_json(ws: ClientConnection) -> Any:
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def test_device_and_check_events_from_rest_calls_reach_the_socket(web: WebApp) -> None:
    async with web.websocket() as ws:
        device = (await web.client.post("/devices", json=DEVICE)).json()
        await web.client.patch(f"/devices/{device['id']}", json={"name": "renamed"})
        await web.client.post(f"/devices/{device['id']}/checks", json={"status_up": False})
        await web.client.delete(f"/devices/{device['id']}")

        created = await recv_json(ws)
        updated = await recv_json(ws)
        check = await recv_json(ws)
        deleted = await recv_json(ws)
    assert created == {"type": "device.created", "payload": device}
    assert updated["type"] == "device.updated" and updated["payload"]["name"] == "renamed"
    assert check["type"] == "check.created"
    assert check["payload"]["device_id"] == device["id"]
    assert check["payload"]["status_up"] is False and check["payload"]["latency_ms"] is None
    assert deleted["type"] == "device.deleted" and deleted["payload"]["id"] == device["id"]


async def test_a_check_made_by_a_worker_reaches_the_socket(web: WebApp, http_target: str) -> None:
    body = {"name": "up", "address": f"{http_target}/ok", "timeout_seconds": 2}
    device = (await web.client.post("/devices", json=body)).json()
    async with web.websocket(f"types=check.created&device_id={device['id']}") as ws:
        r = await web.client.post("/jobs/probe?wait=true", json={"device_ids": [device["id"]]})
        [job] = r.json()["jobs"]
        event, _ = await receive_until(ws, of_type("check.created", run_key=job["run_key"]))
    assert event["payload"]["device_id"] == device["id"]
    assert event["payload"]["status_up"] is True and event["payload"]["latency_ms"] > 0
    assert event["payload"]["source"] == "manual"


async def test_a_cycle_finished_event_reaches_the_socket(web: WebApp, http_target: str) -> None:
    await web.client.post("/devices", json={"name": "up", "address": f"{http_target}/ok"})
    async with web.websocket("types=monitor.cycle.finished") as ws:
        summary = (await web.client.post("/tasks/run")).json()
        event = await recv_json(ws)
    assert event["type"] == "monitor.cycle.finished"
    assert event["payload"]["devices_checked"] == 1 == summary["devices_checked"]


async def test_ping_gets_pong_and_other_text_is_echoed(web: WebApp) -> None:
    async with web.websocket() as ws:
        await ws.send("ping")
        assert await recv_json(ws) == {"type": "pong"}
        await ws.send("hello, мир")
        assert await recv_json(ws) == {"type": "echo", "payload": "hello, мир"}
        await ws.send('{"type": "ping"}')
        assert await recv_json(ws) == {"type": "echo", "payload": '{"type": "ping"}'}


async def test_outside_messages_arrive_as_nats_inbound_json_or_text(
    web: WebApp, settings: Settings
) -> None:
    outside = await nats.connect(settings.nats_url)
    try:
        async with web.websocket() as ws:
            await outside.publish(settings.events_subject, b'{"type": "device.created", "x": 1}')
            await outside.publish(settings.events_subject, b"plain \xff text")
            await outside.publish(settings.events_subject, b"[1, 2]")
            await outside.flush()
            first, second, third = [await recv_json(ws) for _ in range(3)]
    finally:
        await outside.close()
    # no Fleetprobe-Origin header: relayed as inbound even when it looks like ours
    assert first == {"type": "nats.inbound", "payload": {"type": "device.created", "x": 1}}
    assert second == {"type": "nats.inbound", "payload": "plain \ufffd text"}
    assert third == {"type": "nats.inbound", "payload": [1, 2]}
    assert web.hub.inbound == 3


async def test_filters_keep_only_the_types_and_device_asked_for(web: WebApp) -> None:
    async with (
        web.websocket() as everything,
        web.websocket("types=check.created") as checks,
        web.websocket("types=check.created,device.updated") as two_types,
        web.websocket("device_id=2") as device_two,
    ):
        d1 = (await web.client.post("/devices", json=DEVICE)).json()["id"]
        d2 = (await web.client.post("/devices", json=DEVICE)).json()["id"]
        assert (d1, d2) == (1, 2)
        await web.client.post(f"/devices/{d1}/checks", json={"status_up": True})
        await web.client.patch(f"/devices/{d2}", json={"name": "two"})
        await web.client.post(f"/devices/{d2}/checks", json={"status_up": True})

        def seen(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
            return [
                (e["type"], e["payload"].get("device_id", e["payload"].get("id"))) for e in events
            ]

        last = of_type("check.created", device_id=d2)
        # A first passing result makes a device up: its state change comes with it.
        assert seen((await receive_until(everything, last))[1]) == [
            ("device.created", d1),
            ("device.created", d2),
            ("device.state_changed", d1),
            ("check.created", d1),
            ("device.updated", d2),
            ("device.state_changed", d2),
        ]
        assert seen((await receive_until(checks, last))[1]) == [("check.created", d1)]
        assert seen((await receive_until(two_types, last))[1]) == [
            ("check.created", d1),
            ("device.updated", d2),
        ]
        assert seen((await receive_until(device_two, last))[1]) == [
            ("device.created", d2),
            ("device.updated", d2),
            ("device.state_changed", d2),
        ]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/ws/items?device_id=abc", "device_id: not an integer: 'abc'"),
        ("/ws/items?types=", "types: name at least one event type"),
        ("/ws/items?types=,,", "types: name at least one event type"),
        ("/ws/items?types=check.created,bogus.type", "unknown event type 'bogus.type'"),
        ("/ws/nothing", "no WebSocket endpoint at /ws/nothing; use /ws/items"),
        ("/", "no WebSocket endpoint at /; use /ws/items"),
    ],
)
async def test_a_refused_handshake_says_why_in_a_message_and_a_1008_close(
    web: WebApp, path: str, says: str
) -> None:
    async with connect(web.url.replace("http://", "ws://") + path) as ws:
        error = await recv_json(ws)
        with pytest.raises(ConnectionClosed) as info:
            await recv_json(ws)
    assert error["type"] == "error" and says in error["payload"]["detail"]
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008 and says[:60] in info.value.rcvd.reason
    assert web.hub.clients == 0


async def test_an_unknown_type_is_refused_with_the_known_ones_listed(web: WebApp) -> None:
    async with connect(web.ws_url("types=bogus.type")) as ws:
        error = await recv_json(ws)
        with pytest.raises(ConnectionClosed) as info:
            await recv_json(ws)
    detail = error["payload"]["detail"]
    assert "check.created" in detail and "recorder.command" in detail
    assert info.value.rcvd is not None
    assert len(info.value.rcvd.reason.encode()) <= 123  # what a close frame holds


def test_every_registered_event_type_is_accepted_by_the_filter() -> None:
    types = ",".join(EVENT_TYPES)
    assert EventFilter.parse({"types": types}).types == frozenset(EVENT_TYPES)
    with pytest.raises(FilterError, match=r"unknown event type 'device\.create'"):
        EventFilter.parse({"types": "device.create"})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("short", "short"),
        ("x" * 123, "x" * 123),
        ("x" * 124, "x" * 120 + "..."),
        ("é" * 70, "é" * 60 + "..."),  # 2 bytes each: cut on a character boundary
    ],
)
def test_a_close_reason_fits_a_close_frame(text: str, reason: str) -> None:
    assert close_reason(text) == reason
    assert len(close_reason(text).encode()) <= 123


async def test_event_timestamps_are_utc_with_z_like_the_rest_api(web: WebApp) -> None:
    async with web.websocket() as ws:
        device = (await web.client.post("/devices", json=DEVICE)).json()
        check = (
            await web.client.post(
                f"/devices/{device['id']}/checks",
                json={"status_up": True, "checked_at": "2026-01-01T01:00:00+01:00"},
            )
        ).json()
        created = await recv_json(ws)
        announced = await recv_json(ws)
        if announced["type"] == "device.state_changed":  # the first result changes the state
            assert announced["payload"]["since"].endswith("Z")
            announced = await recv_json(ws)
    assert created["payload"]["created_at"].endswith("Z")
    assert check["checked_at"] == "2026-01-01T00:00:00Z"
    assert announced["type"] == "check.created"
    assert announced["payload"]["checked_at"] == check["checked_at"]
    assert announced["payload"]["source"] == "entered"
    assert "error_kind" in announced["payload"]


@pytest.mark.parametrize(
    ("event", "types", "device_id", "expected"),
    [
        ({"type": "tick", "payload": {}}, "check.created", "1", True),
        ({"type": "check.created", "payload": {"device_id": 1}}, None, "1", True),
        ({"type": "check.created", "payload": {"device_id": 2}}, None, "1", False),
        ({"type": "device.deleted", "payload": {"id": 1}}, None, "1", True),
        ({"type": "device.deleted", "payload": {"id": 1}}, "device.created", None, False),
        ({"type": "nats.inbound", "payload": "text"}, None, "1", False),
        ({"type": "nats.inbound", "payload": "text"}, "nats.inbound", None, True),
        ({"type": "check.created", "payload": {"device_id": True}}, None, "1", False),
    ],
)
def test_event_filters_match_by_type_and_device(
    event: dict[str, Any], types: str | None, device_id: str | None, expected: bool
) -> None:
    params = {k: v for k, v in (("types", types), ("device_id", device_id)) if v is not None}
    assert EventFilter.parse(params).matches(event) is expected


async def test_ticks_arrive_every_tick_seconds(settings: Settings, engine: AsyncEngine) -> None:
    fast_ticks = settings.model_copy(update={"tick_seconds": 0.05})
    async with (
        running_worker(fast_ticks, worker=False) as broker,
        serve_app(fast_ticks, engine, broker) as web,
        web.websocket("types=check.created") as ws,  # ticks pass every filter
    ):
        first = await recv_json(ws)
        second = await recv_json(ws)
    assert first["type"] == second["type"] == "tick"
    assert first["payload"]["at"] < second["payload"]["at"]
    assert first["payload"]["at"].endswith("Z")  # the REST API's format


async def test_a_client_that_never_reads_is_dropped_and_never_holds_up_another(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(update={"ws_client_buffer_bytes": 1_000_000})
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
        # No compression (the payloads would shrink to nothing) and a small receive buffer
        # (no autotuning): the server's writes back up after a few MB.
        web.websocket(sock=small_buffer_socket(web.url), compression=None, max_queue=1) as stuck,
        web.websocket(max_size=None) as reader,
    ):
        received: list[dict[str, Any]] = []

        async def read_all() -> None:
            while True:
                event = json.loads(await reader.recv())
                received.append(event)
                if event["payload"] == "last":
                    return

        reading = asyncio.create_task(read_all())
        outside = await nats.connect(settings.nats_url)
        big = json.dumps({"blob": "x" * 400_000}).encode()
        sent = 0
        try:
            while web.hub.dropped == 0:
                assert sent < 200, "the client that never reads was never dropped"
                await outside.publish(settings.events_subject, big)
                await outside.flush()
                sent += 1
            await outside.publish(settings.events_subject, b'"last"')
            await outside.flush()
            async with asyncio.timeout(30):
                await reading
        finally:
            reading.cancel()
            await outside.close()

        # the reader got every message, including those sent after the other was dropped
        assert len(received) == sent + 1
        assert web.hub.clients == 1
        assert "ws client dropped" in caplog.text and "reason=queue overflow" in caplog.text

        # the stuck client, reading at last, finds the close frame after what was buffered
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(30):
                while True:
                    await stuck.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == SLOW_CLIENT_CLOSE


async def test_a_client_that_goes_away_is_unsubscribed(web: WebApp) -> None:
    async with web.websocket():
        assert web.hub.clients == 1

    async def gone() -> bool:
        return web.hub.clients == 0

    await wait_for(gone, what="the hub to forget the client")


async def test_a_client_that_sends_an_oversized_message_is_closed_and_the_others_keep_receiving(
    web: WebApp,
) -> None:
    async with web.websocket() as big, web.websocket() as other:
        await big.send("x" * WS_MAX_MESSAGE_BYTES)  # at the limit: still served
        assert (await recv_json(big))["payload"] == "x" * WS_MAX_MESSAGE_BYTES
        await big.send("x" * 1024 * 1024)
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(10):
                await big.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big

        async def forgotten() -> bool:
            return web.hub.clients == 1

        await wait_for(forgotten, what="the hub to forget the closed client")
        device = (await web.client.post("/devices", json=DEVICE)).json()
        assert await recv_json(other) == {"type": "device.created", "payload": device}
        await other.send("ping")
        assert await recv_json(other) == {"type": "pong"}


def at_least_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")


async def test_a_thousand_connected_clients_all_receive_an_event(web: WebApp) -> None:
    clients = 1000
    at_least_open_files(2 * clients + 500)  # client and server ends live in this process
    gate = asyncio.Semaphore(100)  # a handshake backlog the listen queue takes easily

    async def open_one() -> ClientConnection:
        async with gate:
            # no compression (a zlib context per client) and no keepalive pings
            return await connect(
                web.ws_url(), compression=None, ping_interval=None, open_timeout=60
            )

    opened = await asyncio.gather(*(open_one() for _ in range(clients)), return_exceptions=True)
    sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
    try:
        assert len(sockets) == clients, [e for e in opened if isinstance(e, BaseException)][:3]

        async def all_subscribed() -> bool:
            return web.hub.clients == clients

        await wait_for(all_subscribed, timeout=60, what="every client to subscribe")
        device = (await web.client.post("/devices", json=DEVICE)).json()
        received = await asyncio.gather(*(recv_json(ws) for ws in sockets))
        assert all(event == {"type": "device.created", "payload": device} for event in received)
        assert web.hub.dropped == 0
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def test_a_clients_queue_is_bounded_in_bytes_not_events() -> None:
    sub = Subscriber(1, EventFilter(), max_bytes=10)
    assert sub.offer("12345") and sub.offer("1234")  # 9 bytes queued
    assert not sub.offer("12")  # would be 11: the hub drops this client
    assert await sub.take() == "12345"
    assert sub.queued_bytes == 4 and sub.offer("123456")  # room again once sent


def test_filters_read_an_event_passed_through_as_text() -> None:
    from web.hub import _Outgoing

    text = '{"type":"check.created","payload":{"device_id":3,"status_up":true}}'
    by_type = EventFilter.parse({"types": "check.created"})
    by_device = EventFilter.parse({"device_id": "3"})
    other_device = EventFilter.parse({"device_id": "4"})
    assert by_type.accepts(_Outgoing("check.created", text=text))
    assert not EventFilter.parse({"types": "device.created"}).accepts(
        _Outgoing("check.created", text=text)
    )
    assert by_device.accepts(_Outgoing("check.created", text=text))
    assert not other_device.accepts(_Outgoing("check.created", text=text))
    assert other_device.accepts(_Outgoing("tick", text='{"type":"tick","payload":{}}'))


@pytest.mark.parametrize("on", [False, True], ids=["default-off", "WS_COMPRESSION"])
async def test_permessage_deflate_only_when_asked_for(
    settings: Settings, engine: AsyncEngine, on: bool
) -> None:
    settings = settings.model_copy(update={"ws_compression": on})
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
        web.websocket() as ws,  # the client offers permessage-deflate, as browsers do
    ):
        assert ws.response is not None
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in extensions) is on
