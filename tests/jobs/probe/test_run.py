"""The probe: a failed check is data, every outcome within the device timeout.

Real local targets (uvicorn in a thread, raw sockets, a TLS server with an unknown CA),
through both HTTP engines.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trustme
from httpx_aiohttp import HttpxAiohttpClient

from core.settings import Settings
from jobs.probe import run
from jobs.probe.http import ProbeTransport, make_http_client
from jobs.probe.run import (
    ErrorKind,
    HttpRequest,
    classify_error,
    error_text,
    result_from_response,
    run_probe,
)
from tests.jobs.probe.kinds.servers import http_ok, listening


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    c = make_http_client(Settings(HTTP_ENGINE=request.param))  # type: ignore[call-arg]
    yield c
    await c.aclose()


async def test_a_200_is_up_with_latency_and_status(
    client: httpx.AsyncClient, http_target: str
) -> None:
    r = await run_probe(client, f"{http_target}/ok", 2)
    assert r.status_up and r.status_code == 200 and r.error is None
    assert r.latency_ms is not None and r.latency_ms > 0
    assert r.body_excerpt == b"ok"


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_a_5xx_is_down_with_its_code(
    client: httpx.AsyncClient, http_target: str, code: int
) -> None:
    r = await run_probe(client, f"{http_target}/status/{code}", 2)
    assert not r.status_up and r.status_code == code
    assert r.error_kind is ErrorKind.HTTP_STATUS and r.error == f"HTTP {code}"


async def test_a_404_still_counts_as_up_as_in_the_seed(
    client: httpx.AsyncClient, http_target: str
) -> None:
    r = await run_probe(client, f"{http_target}/status/404", 2)
    assert r.status_up and r.status_code == 404


async def test_a_hanging_target_times_out_within_the_device_timeout(
    client: httpx.AsyncClient, http_target: str
) -> None:
    started = time.monotonic()
    r = await run_probe(client, f"{http_target}/hang?s=30", 0.5)
    elapsed = time.monotonic() - started
    assert not r.status_up and r.error_kind is ErrorKind.TIMEOUT
    assert elapsed < 5  # bounded by the timeout, not by the target's 30 s


async def test_a_cancelled_probe_stops_its_request(
    client: httpx.AsyncClient, http_target: str
) -> None:
    """A worker stopping cancels the task running a probe: the GET goes too, not left
    running unreferenced until the device timeout."""
    probe = asyncio.create_task(run_probe(client, f"{http_target}/hang?s=30", 20))
    await asyncio.sleep(0.3)  # the request is out
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    for _ in range(100):  # its cancellation unwinds within a few loop turns
        if not _requests_running() and not run._abandoned:
            break
        await asyncio.sleep(0.05)
    assert not _requests_running()
    assert not run._abandoned


def _requests_running() -> list[asyncio.Task[object]]:
    """The tasks of this loop still sending a probe's request (``run._get``)."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "_get" and not t.done()
    ]


async def test_a_closed_port_is_refused(client: httpx.AsyncClient, closed_port_url: str) -> None:
    r = await run_probe(client, closed_port_url, 2)
    assert not r.status_up and r.error_kind is ErrorKind.REFUSED
    assert r.latency_ms is not None
    assert isinstance(r.error, str) and str(closed_port_url.rsplit(":", 1)[1].strip("/")) in r.error


async def test_a_body_that_never_ends_is_read_only_up_to_the_cap(
    client: httpx.AsyncClient, http_target: str
) -> None:
    r = await run_probe(client, f"{http_target}/endless", 2, body_max_bytes=1000)
    assert r.status_up and r.status_code == 200 and len(r.body_excerpt) == 1000


async def test_at_most_ten_redirects_are_followed(
    client: httpx.AsyncClient, http_target: str
) -> None:
    ten = await run_probe(client, f"{http_target}/hops/10", 5)
    eleven = await run_probe(client, f"{http_target}/hops/11", 5)
    assert (ten.status_up, ten.status_code, ten.error_kind) == (True, 200, None)
    assert not eleven.status_up and eleven.error_kind is ErrorKind.TOO_MANY_REDIRECTS


async def test_a_redirect_loop_is_a_failure(client: httpx.AsyncClient, http_target: str) -> None:
    r = await run_probe(client, f"{http_target}/loop", 2)
    assert not r.status_up and r.error_kind is ErrorKind.TOO_MANY_REDIRECTS


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (a stalled TLS handshake)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


async def test_a_stalled_tls_handshake_times_out(
    client: httpx.AsyncClient, silent_server: int
) -> None:
    r = await run_probe(client, f"https://127.0.0.1:{silent_server}/", 0.5)
    assert not r.status_up and r.error_kind is ErrorKind.TIMEOUT


@pytest.fixture
async def tls_server() -> AsyncIterator[int]:
    """An HTTPS server whose certificate no public CA signed."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    async with listening(http_ok, ssl_context=ctx) as port:
        yield port


async def test_an_untrusted_certificate_is_a_tls_error(
    client: httpx.AsyncClient, tls_server: int
) -> None:
    r = await run_probe(client, f"https://127.0.0.1:{tls_server}/", 2)
    assert not r.status_up and r.error_kind is ErrorKind.TLS
    assert r.error and "certif" in r.error.lower()


async def test_an_unsupported_scheme_is_an_invalid_url(client: httpx.AsyncClient) -> None:
    r = await run_probe(client, "ftp://127.0.0.1/", 1)
    assert not r.status_up and r.error_kind is ErrorKind.INVALID_URL


async def test_a_probe_keeps_no_cookie_for_the_next_one(
    client: httpx.AsyncClient, http_target: str
) -> None:
    first = await run_probe(client, f"{http_target}/cookie/set", 2)
    assert first.status_up and first.body_excerpt == b"set"
    again = await run_probe(client, f"{http_target}/cookie/echo", 2)
    assert again.status_up and again.body_excerpt == b"none"


async def test_a_device_sends_its_request_each_time_and_a_changed_one_anew(
    client: httpx.AsyncClient, http_target: str
) -> None:
    # The request of a device is built once and sent again (jobs.probe.http.prepared_request).
    posted = HttpRequest(method="POST", headers={"X-Probe": "one"}, body='{"n": 1}')
    seen = []
    for _ in range(2):
        r = await run_probe(client, f"{http_target}/echo", 2, request=posted)
        assert r.status_up, r
        seen.append(json.loads(r.body_excerpt))
    assert seen[0] == seen[1]
    assert (seen[0]["method"], seen[0]["body"]) == ("POST", '{"n": 1}')
    assert seen[0]["headers"]["x-probe"] == "one"
    assert seen[0]["headers"]["user-agent"] == "fleetprobe/0.1"
    changed = HttpRequest(method="PUT", headers={"X-Probe": "two"}, body="b")
    r = await run_probe(client, f"{http_target}/echo", 2, request=changed)
    again = json.loads(r.body_excerpt)
    assert (again["method"], again["headers"]["x-probe"], again["body"]) == ("PUT", "two", "b")
    plain = json.loads((await run_probe(client, f"{http_target}/echo", 2)).body_excerpt)
    assert (plain["method"], plain["body"], "x-probe" in plain["headers"]) == ("GET", "", False)
    assert len(client.prepared) == 3  # type: ignore[attr-defined]


async def test_the_trimmed_transport_sends_what_httpx_aiohttps_own_sends(
    http_target: str,
) -> None:
    options = {"headers": {"User-Agent": "fleetprobe/0.1"}, "trust_env": False}
    ours = make_http_client(Settings(HTTP_ENGINE="aiohttp"))  # type: ignore[call-arg]
    stock = HttpxAiohttpClient(**options)  # type: ignore[arg-type]
    assert isinstance(ours._transport, ProbeTransport)
    assert not isinstance(stock._transport, ProbeTransport)
    sent = []
    try:
        for c in (ours, stock):
            response = await c.request(
                "PATCH",
                f"{http_target}/echo?q=1",
                headers={"X-A": "1", "Content-Type": "text/plain"},
                content=b"payload",
                timeout=3,
            )
            sent.append((response.status_code, response.json(), response.headers["content-type"]))
    finally:
        await ours.aclose()
        await stock.aclose()
    assert sent[0] == sent[1]
    assert sent[0][1]["headers"]["x-a"] == "1" and sent[0][1]["body"] == "payload"


@pytest.mark.parametrize("address", ["http://[::1/", "http://:80/"])
async def test_an_unparseable_address_is_an_invalid_url(
    client: httpx.AsyncClient, address: str
) -> None:
    for _ in range(2):  # the second time too (parsed addresses are cached; errors not)
        r = await run_probe(client, address, 1)
        assert not r.status_up and r.error_kind is ErrorKind.INVALID_URL, r


# Pure classification of the exceptions both engines raise.


def test_dns_failures_are_named_dns() -> None:
    exc = httpx.ConnectError("boom")
    exc.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert classify_error(exc) is ErrorKind.DNS


def test_a_refusal_remapped_to_a_timeout_is_still_a_refusal() -> None:
    # httpx-aiohttp turns aiohttp's ClientConnectorError into httpx.ConnectTimeout.
    exc = httpx.ConnectTimeout("Cannot connect to host 127.0.0.1:1")
    exc.__cause__ = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    assert classify_error(exc) is ErrorKind.REFUSED


def test_a_plain_timeout_is_a_timeout() -> None:
    assert classify_error(httpx.ReadTimeout("read")) is ErrorKind.TIMEOUT
    assert classify_error(TimeoutError()) is ErrorKind.TIMEOUT


def test_a_failure_inside_an_exception_group_is_named_by_its_cause() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionRefusedError(111, "no")])
    assert error_text(group) == "ConnectionRefusedError: [Errno 111] no"
    assert classify_error(group) is ErrorKind.REFUSED


def test_error_text_is_one_short_line() -> None:
    exc = httpx.ConnectError("line one\nline two " + "x" * 1000)
    text = error_text(exc)
    assert "\n" not in text and len(text) <= 300 and text.startswith("ConnectError: line one")


def test_result_from_response_applies_the_seed_rule() -> None:
    assert result_from_response(204, 1.0, b"").status_up
    assert not result_from_response(599, 1.0, b"").status_up


@pytest.mark.parametrize("path", ["/ok", "/hops/2"])
async def test_a_probe_leaves_no_garbage_for_the_cyclic_collector(
    client: httpx.AsyncClient, http_target: str, path: str
) -> None:
    """Everything a probe built is freed by refcounting when it ends: nothing waits for
    the collector (httpx's response and its stream referred to each other, keeping
    aiohttp's response with them: core/garbage_collector.py), the responses of the
    redirects it followed (``response.history``) included."""
    url = f"{http_target}{path}"
    for _ in range(5):  # warm: the client's pool, the address caches
        await run_probe(client, url, 2)
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            assert (await run_probe(client, url, 2)).status_up
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        kinds = sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, kinds
