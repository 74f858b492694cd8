"""The HTTP probe: one request (GET unless the device says otherwise), a
:class:`ProbeResult` out.  A failed check is data.

The probe catches every timeout and transport error and returns them inside the result;
an exception escaping :func:`run_probe` is a bug, never "device down".
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx

from jobs.probe.http import peer_der, prepared_request, probe_url

ERROR_TEXT_MAX = 300


class ErrorKind(StrEnum):
    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    TOO_MANY_REDIRECTS = "redirects"
    PROTOCOL = "protocol"
    INVALID_URL = "invalid_url"
    CONNECTION = "connection"
    # The check completed but a condition failed (not the [STATUS] one: http_status).
    CONDITION = "condition"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one check saw; conditions can later be evaluated on it without I/O."""

    status_up: bool
    latency_ms: float | None
    status_code: int | None = None
    # An ErrorKind, or a kind's own (recorder: no_responder, invalid_reply, ...).
    error_kind: ErrorKind | str | None = None
    error: str | None = None
    body_excerpt: bytes = b""
    # Judged by the conditions (jobs.probe.check): up | degraded | down and the verdicts;
    # None for a result not judged (a manual one: its outcome follows status_up).
    outcome: str | None = None
    verdicts: list[dict[str, Any]] | None = None
    degraded_verdicts: list[dict[str, Any]] | None = None
    certificate_expires_at: datetime | None = None
    # https:// and tls://: the peer certificate's subject (RFC 4514, e.g. CN=mail.local).
    certificate_subject: str | None = None
    # The DER certificate of an https response, when the HTTP engine exposes its
    # connection (httpx's own transport); not stored.
    peer_certificate: bytes | None = field(default=None, repr=False)


def is_up(status_code: int) -> bool:
    """The seed's rule: the device answers, and not with a server error."""
    return status_code < 500


def classify_error(exc: BaseException) -> ErrorKind:
    """Map a transport exception to the kind of failure an operator cares about.

    The root causes are read before the outer type: httpx-aiohttp maps a refused
    connection to ``httpx.ConnectTimeout``, so the type alone would say "timeout".
    """
    chain = _chain(exc)
    text = " ".join(str(e).lower() for e in chain)
    if isinstance(exc, httpx.TooManyRedirects):
        return ErrorKind.TOO_MANY_REDIRECTS
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ErrorKind.INVALID_URL
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain) or (
        "[ssl" in text or "certificate verify failed" in text
    ):
        return ErrorKind.TLS
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in text for marker in _DNS_MARKERS
    ):
        return ErrorKind.DNS
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        "refused" in text or "connect call failed" in text
    ):
        return ErrorKind.REFUSED
    if any(isinstance(e, TimeoutError | httpx.TimeoutException) for e in chain):
        return ErrorKind.TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return ErrorKind.PROTOCOL
    return ErrorKind.CONNECTION


_DNS_MARKERS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "name resolution",
    "getaddrinfo failed",
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        if isinstance(cur, BaseExceptionGroup) and cur.exceptions:
            cur = cur.exceptions[0]  # anyio's connect wraps its failure in a group
        else:
            cur = cur.__cause__ or cur.__context__
    return seen


def error_text(exc: BaseException) -> str:
    """A short, single-line description of the failure."""
    # The deepest cause names the failure best (the outer type may be a remapping).
    for e in reversed(_chain(exc)):
        msg = str(e).strip()
        if msg:
            text = f"{type(e).__name__}: {msg}"
            break
    else:
        text = type(exc).__name__
    return " ".join(text.split())[:ERROR_TEXT_MAX]


def result_from_response(
    status_code: int, latency_ms: float, body: bytes, peer_certificate: bytes | None = None
) -> ProbeResult:
    up = is_up(status_code)
    return ProbeResult(
        status_up=up,
        latency_ms=latency_ms,
        status_code=status_code,
        error_kind=None if up else ErrorKind.HTTP_STATUS,
        error=None if up else f"HTTP {status_code}",
        body_excerpt=body,
        peer_certificate=peer_certificate,
    )


def describe_error(exc: BaseException) -> tuple[ErrorKind, str]:
    """A transport failure's kind and one-line text (said to be a timeout when it is one),
    for every check kind alike."""
    kind = classify_error(exc)
    text = error_text(exc)
    if kind is ErrorKind.TIMEOUT and not text.lower().startswith("timeout"):
        text = f"timeout: {text}"[:ERROR_TEXT_MAX]
    return kind, text


def result_from_error(exc: BaseException, latency_ms: float | None) -> ProbeResult:
    kind, text = describe_error(exc)
    return ProbeResult(status_up=False, latency_ms=latency_ms, error_kind=kind, error=text)


# Probes abandoned at their deadline while their cancellation is still unwinding (aiohttp
# shields DNS look-ups); kept referenced until they finish.
_abandoned: set[asyncio.Task[ProbeResult]] = set()


def _abandon(task: asyncio.Task[ProbeResult]) -> None:
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_abandoned.discard)


def _wake(waiter: asyncio.Future[None], *_: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What an http(s) check sends beyond its URL (the device's settings)."""

    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: str | None = None
    # At most the client's max_redirects (10); false: a 30x is the answer.
    follow_redirects: bool = True


PLAIN_GET = HttpRequest()
# What a closed response's stream is replaced with (see _get).
_SPENT = httpx.ByteStream(b"")


async def run_probe(
    client: httpx.AsyncClient,
    address: str,
    timeout: float,
    *,
    body_max_bytes: int = 65536,
    request: HttpRequest = PLAIN_GET,
) -> ProbeResult:
    """Send ``request`` (a GET by default) to ``address``; the result is back within
    ``timeout`` seconds whatever the target does.

    At most ``body_max_bytes`` of the body are read; the rest is dropped unread.
    """
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    task = loop.create_task(_get(client, address, timeout, body_max_bytes, started, request))
    # Woken by the request's end or its deadline, whichever comes first: what
    # asyncio.wait({task}, timeout=...) did, without its set, its per-call callback and its
    # futures (~50 against ~35 us of CPU a probe, docs/performance.md).
    waiter: asyncio.Future[None] = loop.create_future()
    wake = functools.partial(_wake, waiter)
    task.add_done_callback(wake)
    deadline = loop.call_later(timeout, wake)
    try:
        await waiter
    except asyncio.CancelledError:  # the task running the probe is stopped: so is the GET
        _abandon(task)
        raise
    finally:
        deadline.cancel()
    if task.done():
        return task.result()
    _abandon(task)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return ProbeResult(
        status_up=False,
        latency_ms=latency_ms,
        error_kind=ErrorKind.TIMEOUT,
        error=f"timeout: no complete answer within {timeout:g}s",
    )


async def _get(
    client: httpx.AsyncClient,
    address: str,
    timeout: float,
    body_max_bytes: int,
    started: float,
    request: HttpRequest,
) -> ProbeResult:
    try:
        url = probe_url(address)
        prepared = prepared_request(
            client, address, url, timeout, request.method, request.headers, request.body
        )
        response = await client.send(
            prepared, stream=True, follow_redirects=request.follow_redirects
        )
        try:
            body = bytearray()
            if body_max_bytes > 0:
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= body_max_bytes:
                        del body[body_max_bytes:]
                        break
            latency_ms = (time.perf_counter() - started) * 1000
            return result_from_response(
                response.status_code, round(latency_ms, 3), bytes(body), peer_der(response)
            )
        finally:
            await response.aclose()
            # httpx's Response and the BoundAsyncStream it reads from refer to each other:
            # a cycle holding aiohttp's response (27 objects a probe) that only the
            # cyclic collector would free. Broken once closed: refcounting frees it now;
            # the same for the redirects followed (httpx closed them already).
            response.stream = _SPENT
            for followed in response.history:
                followed.stream = _SPENT
    except Exception as exc:  # failures are data (see module docstring)
        latency_ms = (time.perf_counter() - started) * 1000
        return result_from_error(exc, round(latency_ms, 3))
