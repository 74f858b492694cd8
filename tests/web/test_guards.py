"""``web/guards.py`` through a real uvicorn: what a web page can make a browser send is
refused (text/plain bodies 415, a rebound ``Host`` 400, a foreign ``Origin`` 403), and what
fleetprobe's clients send still works.  Raw sockets where a client library would set
``Host``, ``Origin`` or ``Content-Type`` by itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message, Scope
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.settings import Settings
from tests.helpers import running_worker
from tests.webapp import WebApp, serve_app
from web.guards import HostGuard, JsonOnly, OriginGuard, allowed_hosts, is_json_media_type

DEVICE = json.dumps({"name": "csrf", "address": "http://127.0.0.1:9/"})
TOKEN = "guard-token"


async def raw(web: WebApp, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, CRLF-joined, no blank line) and ``body`` as
    they are; the status, headers and body of the answer."""
    host, port = web.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(10):
            writer.write(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            data = await reader.read()
    finally:
        writer.close()
    return status, headers, data


def post(path: str, host: str, content_type: str | None, body: str, **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines)


def host_of(web: WebApp) -> str:
    return web.url.removeprefix("http://")


async def device_names(web: WebApp) -> list[str]:
    return [d["name"] for d in (await web.client.get("/devices")).json()]


# -- 415: bodies only as JSON ----------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",  # what fetch(..., {mode: "no-cors", body: "..."}) sends
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,  # a Blob body without a type: the browser sends no Content-Type at all
    ],
)
async def test_a_json_body_not_sent_as_json_is_refused_with_415_and_creates_nothing(
    web: WebApp, content_type: str | None
) -> None:
    status, headers, body = await raw(
        web, post("/devices", host_of(web), content_type, DEVICE), DEVICE.encode()
    )
    assert status == 415 and headers["content-type"] == "application/json"
    detail = json.loads(body)["detail"]
    assert "application/json" in detail and (content_type is None or repr(content_type) in detail)
    assert await device_names(web) == []


async def test_the_415_is_answered_before_a_byte_of_the_body_is_read(web: WebApp) -> None:
    head = post("/devices", host_of(web), "text/plain", "x" * 5000)  # the body never comes
    status, _, body = await raw(web, head)
    assert status == 415 and "application/json" in json.loads(body)["detail"]


async def test_json_bodies_and_posts_without_a_body_still_work(web: WebApp) -> None:
    for content_type in ("application/json", "Application/JSON; charset=utf-8"):
        status, _, body = await raw(
            web, post("/devices", host_of(web), content_type, DEVICE), DEVICE.encode()
        )
        assert status == 201, body
    device_id = (await web.client.get("/devices")).json()[0]["id"]
    patch = await web.client.patch(
        f"/devices/{device_id}",
        content=b'{"name": "merged"}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patch.status_code == 200 and patch.json()["name"] == "merged"
    # curl -X POST .../jobs/probe: no body, so no Content-Type needed
    status, _, body = await raw(web, post("/jobs/probe", host_of(web), None, ""))
    assert status == 202, body


# -- 400: Host ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "[::2]:{port}"],
)
async def test_a_request_for_a_foreign_host_is_refused_with_400_and_one_log_line(
    web: WebApp, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    caplog.set_level("INFO", logger="web.guards")
    host = host.format(port=host_of(web).split(":")[1])
    status, headers, body = await raw(web, f"GET /devices HTTP/1.1\r\nHost: {host}")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "ALLOWED_HOSTS" in json.loads(body)["detail"]
    status, _, _ = await raw(web, post("/devices", host, "application/json", DEVICE), b"{}")
    assert status == 400
    assert await device_names(web) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "web.guards"]
    assert len(lines) == 2 and all("refused http" in line and "host=" in line for line in lines)


async def test_a_request_without_a_host_is_refused(web: WebApp) -> None:
    status, _, body = await raw(web, "GET /devices HTTP/1.0")
    assert status == 400 and "missing" in json.loads(body)["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost", "[::1]:1"])
async def test_the_local_names_are_served_on_any_port(web: WebApp, host: str) -> None:
    host = host.format(port=host_of(web).split(":")[1])
    status, _, body = await raw(web, f"GET /devices HTTP/1.1\r\nHost: {host}")
    assert status == 200 and json.loads(body) == []


async def test_allowed_hosts_replaces_the_default_names(
    settings: Settings, engine: AsyncEngine
) -> None:
    proxied = settings.model_copy(update={"allowed_hosts": ("fleet.example.org",)})
    async with (
        running_worker(proxied, worker=False) as broker,
        serve_app(proxied, engine, broker) as web,
    ):
        status, _, _ = await raw(web, "GET /devices HTTP/1.1\r\nHost: fleet.example.org")
        assert status == 200
        status, _, _ = await raw(web, f"GET /devices HTTP/1.1\r\nHost: {host_of(web)}")
        assert status == 400


async def test_a_websocket_handshake_for_a_foreign_host_is_refused_with_400(web: WebApp) -> None:
    handshake = (
        "GET /ws/items HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13"
    )
    status, _, body = await raw(web, handshake)
    assert status == 400 and "ALLOWED_HOSTS" in json.loads(body)["detail"]
    assert web.hub.clients == 0


# -- 403: Origin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "http://localhost:{port}"]
)
async def test_a_websocket_from_a_foreign_origin_is_refused_with_403_and_a_reason(
    web: WebApp, caplog: pytest.LogCaptureFixture, origin: str
) -> None:
    caplog.set_level("WARNING", logger="web.guards")
    origin = origin.format(port=host_of(web).split(":")[1])  # localhost is another origin
    with pytest.raises(InvalidStatus) as info:
        async with connect(web.ws_url(), additional_headers={"Origin": origin}):
            pass
    response = info.value.response
    assert response.status_code == 403
    assert "ALLOWED_ORIGINS" in json.loads(response.body or b"{}")["detail"]
    assert web.hub.clients == 0
    [line] = [r.getMessage() for r in caplog.records if r.name == "web.guards"]
    assert "refused WebSocket" in line and repr(origin) in line


async def test_a_websocket_with_no_origin_or_its_own_origin_is_served(web: WebApp) -> None:
    async with (
        web.websocket() as script,
        web.websocket(origin=web.url) as own_page,  # type: ignore[arg-type]
    ):
        for ws in (script, own_page):
            await ws.send("ping")
            assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_a_write_from_a_foreign_origin_is_refused_and_reads_are_not(web: WebApp) -> None:
    evil = {"Origin": "http://evil.example"}
    # a body-less POST is a "simple" request a page can send: it must not start anything
    for path in ("/jobs/probe", "/tasks/run", "/recorder/cam1/start"):
        r = await web.client.post(path, headers=evil)
        assert r.status_code == 403, (path, r.text)
    r = await web.client.post("/devices", content=DEVICE, headers=evil)
    assert r.status_code == 403
    assert (await web.client.get("/devices", headers=evil)).status_code == 200  # the browser
    # keeps the answer from the page (no CORS); a rebound page is stopped by the Host check
    own = await web.client.post("/devices", json=json.loads(DEVICE), headers={"Origin": web.url})
    assert own.status_code == 201
    assert await device_names(web) == ["csrf"]


async def test_allowed_origins_may_use_the_server(settings: Settings, engine: AsyncEngine) -> None:
    dash = "https://dash.example.org"
    opened = settings.model_copy(update={"allowed_origins": (dash,)})
    async with (
        running_worker(opened, worker=False) as broker,
        serve_app(opened, engine, broker) as web,
    ):
        async with web.websocket(origin=dash) as ws:  # type: ignore[arg-type]
            await ws.send("ping")
            assert json.loads(await ws.recv()) == {"type": "pong"}
        r = await web.client.post("/devices", json=json.loads(DEVICE), headers={"Origin": dash})
        assert r.status_code == 201


# -- with API_TOKEN: the same, before the token is looked at ------------------------------


@pytest.fixture
async def locked(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    with_token = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        running_worker(with_token, worker=False) as broker,
        serve_app(with_token, engine, broker) as web,
    ):
        yield web


async def test_with_a_token_the_browser_checks_still_apply_and_come_first(locked: WebApp) -> None:
    web = locked
    auth = f"Bearer {TOKEN}"
    for authorization in ({}, {"Authorization": auth}):
        status, _, _ = await raw(
            web, post("/devices", host_of(web), "text/plain", DEVICE, **authorization), b"{}"
        )
        assert status == 415
        status, _, _ = await raw(
            web, post("/devices", "evil.example", "application/json", DEVICE, **authorization)
        )
        assert status == 400
        with pytest.raises(InvalidStatus) as info:
            async with connect(
                web.ws_url(f"token={TOKEN}"),
                additional_headers={"Origin": "http://evil.example", **authorization},
            ):
                pass
        assert info.value.response.status_code == 403
    # and the legitimate paths: the token opens them, its absence does not
    status, _, _ = await raw(web, post("/devices", host_of(web), "application/json", DEVICE))
    assert status == 401
    r = await web.client.post(
        "/devices", content=DEVICE, headers={"content-type": "application/json"}
    )
    assert r.status_code == 201
    async with web.websocket(f"token={TOKEN}", origin=web.url) as ws:  # type: ignore[arg-type]
        await ws.send("ping")
        assert json.loads(await ws.recv()) == {"type": "pong"}


# -- the spec ---------------------------------------------------------------------------


async def test_the_spec_declares_the_415_403_and_400(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "400" in responses, (method, path)
            assert ("415" in responses) == ("requestBody" in operation), (method, path)
            assert ("403" in responses) == (method != "get"), (method, path)


# -- the middlewares alone (ASGI) ------------------------------------------------------


async def call(app: Any, scope: Scope) -> tuple[int | None, bool]:
    """The status answered, and whether the app behind was reached."""
    reached = False
    sent: list[Message] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal reached
        reached = True

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(inner)(scope, receive, send)
    starts = [m["status"] for m in sent if m["type"] == "http.response.start"]
    return (starts[0] if starts else None), reached


def scope(method: str = "POST", **headers: str) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": "/devices",
        "query_string": b"",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content_length": "2", "content_type": "application/json"}, None),
        ({"content_length": "2", "content_type": "application/problem+json"}, None),
        ({"content_length": "0", "content_type": "text/plain"}, None),  # no body
        ({}, None),
        ({"content_length": "2", "content_type": "text/plain"}, 415),
        ({"content_length": "2"}, 415),
        ({"transfer_encoding": "chunked", "content_type": "text/plain"}, 415),
    ],
)
async def test_json_only_looks_at_the_headers_alone(
    headers: dict[str, str], status: int | None
) -> None:
    assert await call(JsonOnly, scope(**headers)) == (status, status is None)


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("POST", {"host": "h:1", "origin": "http://h:1"}, None),
        ("POST", {"host": "h:1"}, None),
        ("GET", {"host": "h:1", "origin": "http://evil"}, None),
        ("POST", {"host": "h:1", "origin": "http://evil"}, 403),
        ("DELETE", {"host": "h:1", "origin": "http://h:2"}, 403),
        ("PATCH", {"host": "h:1", "origin": "null"}, 403),
        ("POST", {"host": "h:1", "origin": "http://ok.example"}, None),
    ],
)
async def test_origin_guard_refuses_writes_from_foreign_origins(
    method: str, headers: dict[str, str], status: int | None
) -> None:
    def app(inner: Any) -> OriginGuard:
        return OriginGuard(inner, allowed_origins=["http://ok.example"])

    assert await call(app, scope(method, **headers)) == (status, status is None)


@pytest.mark.parametrize(
    ("host", "status"), [("localhost:8002", None), ("evil", 400), ("bad host", 400)]
)
async def test_host_guard_refuses_hosts_not_allowed(host: str, status: int | None) -> None:
    def app(inner: Any) -> HostGuard:
        return HostGuard(inner, allowed=("localhost",))

    assert await call(app, scope("GET", host=host)) == (status, status is None)


def test_a_host_guard_without_hosts_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="no allowed host"):
        HostGuard(lambda *a: None, allowed=())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "json_"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/merge-patch+json", True),
        ("application/vnd.api+json", True),
        ("application/+json", False),
        ("application/json-seq", False),
        ("text/json", False),
        ("text/plain", False),
        ("", False),
    ],
)
def test_json_media_types_are_recognised(value: str, json_: bool) -> None:
    assert is_json_media_type(value) is json_


async def test_the_client_library_used_above_really_sends_what_it_is_told(web: WebApp) -> None:
    # httpx with content= and no Content-Type sends none: the refusal is the server's
    r = await web.client.post("/devices", content=DEVICE)
    assert r.status_code == 415 and "content-type" not in r.request.headers
    async with httpx.AsyncClient(base_url=web.url) as client:
        r = await client.post("/devices", json=json.loads(DEVICE))
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("bind", "configured", "hosts", "warned"),
    [
        ("127.0.0.1", None, ("localhost", "127.0.0.1", "[::1]"), False),
        ("fleet.lan", None, ("localhost", "127.0.0.1", "[::1]", "fleet.lan"), False),
        ("0.0.0.0", None, ("localhost", "127.0.0.1", "[::1]"), True),
        ("0.0.0.0", ("fleet.example.org",), ("fleet.example.org",), False),
    ],
)
def test_a_wildcard_bind_without_allowed_hosts_is_warned_about(
    caplog: pytest.LogCaptureFixture,
    bind: str,
    configured: tuple[str, ...] | None,
    hosts: tuple[str, ...],
    warned: bool,
) -> None:
    caplog.set_level("WARNING", logger="web.guards")
    assert allowed_hosts(Settings(ALLOWED_HOSTS=",".join(configured or ())), bind) == hosts  # type: ignore[call-arg]
    lines = [r.getMessage() for r in caplog.records if r.name == "web.guards"]
    assert bool(lines) is warned
    if warned:
        assert "set ALLOWED_HOSTS" in lines[0] and f"host={bind}" in lines[0]
