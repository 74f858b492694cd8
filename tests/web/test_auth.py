"""``web/auth.py``: with ``API_TOKEN`` set, every REST route but ``/health`` and every
WebSocket need the token; without it, a non-loopback bind address is warned about."""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message, Scope
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.natsserver import EmbeddedNats, free_port
from core.settings import Settings
from tests.conftest import isolated_env
from tests.helpers import running_worker
from tests.processes import scheduler_cmd, wait_until
from tests.webapp import WebApp, serve_app
from web.app import api_endpoints
from web.auth import BearerAuth, split_token, warn_if_exposed

TOKEN = "s3cret-Token_with.symbols~"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    locked = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        running_worker(locked, worker=False) as broker,
        serve_app(locked, engine, broker) as web,
    ):
        yield web


@pytest.fixture
async def anonymous(web: WebApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=10) as client:
        yield client


def every_operation() -> list[tuple[str, str]]:
    """(method, concrete path) of every REST endpoint, path parameters filled in."""
    operations = []
    for endpoint in api_endpoints():
        path = re.sub(r"\{[^}:]+:int\}", "1", endpoint.path)
        operations.append((endpoint.method, re.sub(r"\{[^}]+\}", "cam1", path)))
    return operations


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.request.method, r.request.url, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"detail"} and "token" in r.json()["detail"]


async def test_every_rest_route_but_health_refuses_a_request_without_the_token(
    web: WebApp, anonymous: httpx.AsyncClient
) -> None:
    operations = every_operation()
    assert len(operations) == len({*operations}) >= 20
    for method, path in operations:
        if path == "/health":
            continue
        assert_refused(await anonymous.request(method, path, json={}))
        for wrong in (
            "Bearer nope",
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN[:-1]}",
            "Basic eDp5",
            TOKEN,
        ):
            assert_refused(await anonymous.request(method, path, headers={"Authorization": wrong}))
        assert_refused(await anonymous.request(method, path, params={"token": "nope"}))
    # an unknown path is refused too: routes are not revealed to strangers
    assert_refused(await anonymous.get("/nowhere"))


async def test_a_refused_request_changes_nothing(web: WebApp, anonymous: httpx.AsyncClient) -> None:
    device = {"name": "intruder", "address": "http://127.0.0.1:9/"}
    assert_refused(await anonymous.post("/devices", json=device))
    assert_refused(await anonymous.post("/recorder/schedules", json={"task_id": "cam1"}))
    assert (await web.client.get("/devices")).json() == []
    assert (await web.client.get("/recorder/schedules")).json() == []


async def test_the_token_opens_every_route_as_a_header_and_never_as_a_query_parameter(
    web: WebApp, anonymous: httpx.AsyncClient
) -> None:
    device = {"name": "edge", "address": "http://127.0.0.1:9/"}
    created = await anonymous.post("/devices", json=device, headers=AUTH)
    assert created.status_code == 201
    # the scheme is case-insensitive
    r = await anonymous.get("/devices", headers={"Authorization": f"bearer {TOKEN}"})
    assert [d["name"] for d in r.json()] == ["edge"]
    # ?token= is for WebSocket handshakes only: a REST request is refused, and told why
    for path in (f"/devices/{created.json()['id']}", "/devices/999", "/devices"):
        r = await anonymous.get(path, params={"token": TOKEN})
        assert_refused(r)
        assert "WebSocket handshakes only" in r.json()["detail"]
    r = await anonymous.post("/devices", params={"token": TOKEN}, json={**device, "name": "q"})
    assert_refused(r)
    # with the header, a token parameter is taken out before validation (no 422)
    r = await anonymous.get("/devices", params={"is_active": "true", "token": "x"}, headers=AUTH)
    assert r.status_code == 200 and [d["name"] for d in r.json()] == ["edge"]


async def test_the_token_is_never_taken_from_a_cookie(
    web: WebApp, anonymous: httpx.AsyncClient
) -> None:
    for cookie in (f"token={TOKEN}", f"API_TOKEN={TOKEN}", f"Authorization=Bearer {TOKEN}"):
        assert_refused(await anonymous.get("/devices", headers={"Cookie": cookie}))
        with pytest.raises(InvalidStatus) as info:
            async with connect(web.ws_url(), additional_headers={"Cookie": cookie}):
                pass
        assert info.value.response.status_code == 401


async def test_a_token_in_the_query_string_stays_out_of_the_access_log(
    web: WebApp, anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="uvicorn.access")
    r = await anonymous.get("/devices", params={"limit": "5", "token": TOKEN})
    assert r.status_code == 401  # refused (header only on REST), and still not logged
    async with web.websocket(f"token={TOKEN}"):
        pass
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")]
    assert any("/devices?limit=5" in line for line in logged), logged
    assert not any(TOKEN in line for line in logged), logged


async def test_a_token_in_the_query_of_a_request_the_guards_refuse_stays_out_of_the_log(
    web: WebApp, anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The guards answer before the token is checked: a dashboard's handshake refused for
    its ``Origin`` (a proxy not yet in ``ALLOWED_ORIGINS``) or its ``Host`` carries the
    real token, and uvicorn logs the path of every answer, refusals included."""
    # A uvicorn started earlier in this process with its default log config (a test
    # target, tests/targets.py) set these loggers to WARNING and not to propagate: lower
    # them for the test and listen on them directly, not only at the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        caplog.set_level("INFO", logger=name)
    for name in ("uvicorn", "uvicorn.access"):
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        await _refuse_requests_carrying_the_token(web, anonymous)
    finally:
        for name in ("uvicorn", "uvicorn.access"):
            logging.getLogger(name).removeHandler(caplog.handler)
    # each record once, whether it reached the handler directly, by the root, or both
    # (caplog.records holds them all, so their ids stay distinct)
    once = {id(r): r for r in caplog.records if r.name.startswith("uvicorn")}
    lines = [r.getMessage() for r in once.values()]
    assert sum("/ws/items?types=tick" in line for line in lines) == 2, lines
    assert sum(line.endswith((" 400", " 415", " 403")) for line in lines) == 5, lines
    assert not any(TOKEN in line for line in lines), lines


async def _refuse_requests_carrying_the_token(web: WebApp, anonymous: httpx.AsyncClient) -> None:
    for origin in ("http://evil.example", "null"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(web.ws_url(f"types=tick&token={TOKEN}"), origin=origin):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
    refused = [
        await anonymous.get("/devices", params={"token": TOKEN}, headers={"Host": "evil.example"}),
        await anonymous.post(
            "/devices",
            params={"token": TOKEN},
            content=b"{}",
            headers={"content-type": "text/plain"},
        ),
        await anonymous.post(
            "/jobs/probe", params={"token": TOKEN}, headers={"Origin": "http://evil.example"}
        ),
    ]
    assert [r.status_code for r in refused] == [400, 415, 403]


async def test_health_the_spec_and_swagger_stay_public(
    web: WebApp, anonymous: httpx.AsyncClient
) -> None:
    assert (await anonymous.get("/health")).status_code == 200
    assert (await anonymous.get("/openapi.json")).status_code == 200
    assert (await anonymous.get("/swagger")).status_code == 200
    assert (await anonymous.get("/swagger/assets/swagger-ui.css")).status_code == 200


async def test_the_spec_declares_the_bearer_scheme_and_the_401s(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    schemathesis.openapi.from_dict(spec).validate()  # against the OpenAPI 3.0 meta-schema
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    # ?token= opens WebSocket handshakes only: no REST operation takes it
    assert set(schemes) == {"bearer"}
    assert spec["security"] == [{"bearer": []}]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            if path == "/health":
                assert operation["security"] == [] and "401" not in operation["responses"]
            else:
                assert "security" not in operation and "401" in operation["responses"]


async def test_without_a_token_nothing_is_asked_and_the_spec_declares_no_scheme(
    settings: Settings, engine: AsyncEngine
) -> None:
    assert settings.api_token is None
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        assert (await web.client.get("/devices")).status_code == 200
        spec = (await web.client.get("/openapi.json")).json()
    assert "securitySchemes" not in spec["components"] and "security" not in spec


async def test_a_websocket_without_the_token_is_refused_at_the_handshake(web: WebApp) -> None:
    for query, headers in (("", {}), ("token=nope", {}), ("", {"Authorization": "Bearer x"})):
        with pytest.raises(InvalidStatus) as info:
            async with connect(web.ws_url(query), additional_headers=headers):
                pass
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert set(json.loads(response.body or b"{}")) == {"detail"}


async def test_a_websocket_with_the_token_in_the_query_or_a_header_is_served(
    web: WebApp,
) -> None:
    async with (
        web.websocket(f"token={TOKEN}&types=tick") as by_query,
        web.websocket(additional_headers=AUTH) as by_header,
    ):
        for ws in (by_query, by_header):
            await ws.send("ping")
            assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        sent.append({"type": "reached"})

    async def record(message: Message) -> None:
        sent.append(message)

    auth = BearerAuth(app, TOKEN)
    for given in (TOKEN, "short", TOKEN * 10):
        headers = [(b"authorization", f"Bearer {given}".encode())]
        scope = {"type": "http", "path": "/devices", "headers": headers, "query_string": b""}
        await auth(scope, None, record)  # type: ignore[arg-type]
    # every comparison goes through compare_digest, on digests of one length
    assert len(compared) == 3 and {len(a) for pair in compared for a in pair} == {32}
    assert sent[0]["type"] == "reached"
    assert [m.get("status") for m in sent[1:] if m["type"] == "http.response.start"] == [401, 401]


@pytest.mark.parametrize(
    ("query", "token", "rest"),
    [
        (b"", None, b""),
        (b"token=abc", b"abc", b""),
        (b"types=tick&token=a%2Bb+c&device_id=1", b"a+b c", b"types=tick&device_id=1"),
        (b"tok=1&tokens=2", None, b"tok=1&tokens=2"),
        (b"%74oken=x&y=%2C", b"x", b"y=%2C"),
    ],
)
def test_the_token_parameter_is_split_from_the_query_string(
    query: bytes, token: bytes | None, rest: bytes
) -> None:
    assert split_token(query) == (token, rest)


def test_an_empty_token_cannot_be_configured() -> None:
    assert Settings(API_TOKEN="").api_token is None  # type: ignore[call-arg]
    assert Settings().api_token is None
    set_ = Settings(API_TOKEN=TOKEN)  # type: ignore[call-arg]
    assert set_.api_token is not None and set_.api_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(set_)
    with pytest.raises(ValueError, match="empty"):
        BearerAuth(lambda *a: None, "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("127.0.0.1", None, False),
        ("127.0.0.2", None, False),
        ("::1", None, False),
        ("[::1]", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.168.1.10", None, True),
        ("fleet.example.org", None, True),
        ("0.0.0.0", TOKEN, False),
    ],
)
def test_a_non_loopback_bind_address_without_a_token_is_warned_about(
    caplog: pytest.LogCaptureFixture, host: str, token: str | None, warned: bool
) -> None:
    caplog.set_level("WARNING", logger="web.auth")
    secret = SecretStr(token) if token else None
    assert warn_if_exposed(host, secret) is warned
    records = [r for r in caplog.records if r.levelname == "WARNING"]
    assert bool(records) is warned
    if warned:
        assert "API_TOKEN" in records[0].getMessage() and host in records[0].getMessage()


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_scheduler_py_warns_at_start_when_it_binds_beyond_loopback_without_a_token(
    nats_server: EmbeddedNats, tmp_path: Path, token: str | None
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    if token:
        env["API_TOKEN"] = token
    # TEST-NET-1 (RFC 5737) is on no interface here: the bind fails after the warning,
    # so nothing ever listens beyond this machine.
    args = ("--no-scheduler", "--no-worker", "--host", "192.0.2.1", "--port", str(free_port()))
    proc = scheduler_cmd(env, tmp_path / "scheduler.log", *args)
    try:
        wait_until(
            lambda: proc.popen.poll() is not None or "fleetprobe running" in proc.output(),
            60,
            "the web app to start or fail",
        )
    finally:
        proc.stop()
    output = proc.output()
    # It got as far as binding (and was refused, cleanly).
    assert "cannot listen on 192.0.2.1" in output or "web listening" in output, output[-3000:]
    warnings = [line for line in output.splitlines() if "WARNING web.auth" in line]
    if token:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "host=192.0.2.1 without API_TOKEN" in warnings[0]
