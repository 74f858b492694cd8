"""``web/limits.py``: bodies over 1 MiB are refused with 413 before they are read (by
``Content-Length``) or as soon as they pass the limit (chunked), on the ASGI level and
through a real uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from tests.webapp import WebApp
from web.limits import MAX_BODY_BYTES, BodyLimit

LIMIT = 10_000


def http_scope(headers: dict[str, str] | None = None) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }


async def read_body(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await JSONResponse({"read": len(body)})(scope, receive, send)


async def call(app: BodyLimit, scope: Scope, receive: Receive) -> tuple[int, Any]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, json.loads(body)


async def test_a_content_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    async def must_not_read() -> Message:
        raise AssertionError("the body was read")

    app = BodyLimit(read_body, max_bytes=LIMIT)
    status, body = await call(app, http_scope({"content-length": str(LIMIT + 1)}), must_not_read)
    assert status == 413
    assert body == {"detail": f"request body larger than {LIMIT} bytes"}


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    chunks_read = 0

    async def endless() -> Message:  # a body that never ends
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    app = BodyLimit(read_body, max_bytes=LIMIT)
    status, body = await call(app, http_scope(), endless)
    assert status == 413 and "larger than" in body["detail"]
    assert chunks_read == LIMIT // 1000 + 1


async def test_a_body_of_exactly_the_limit_reaches_the_app() -> None:
    chunks = [b"x" * 4000, b"x" * 4000, b"x" * 2000]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    app = BodyLimit(read_body, max_bytes=LIMIT)
    assert await call(app, http_scope(), receive) == (200, {"read": LIMIT})


# -- through uvicorn -------------------------------------------------------------------


def device_body(size: int) -> bytes:
    """A valid device, padded with JSON whitespace to exactly ``size`` bytes."""
    core = b'{"name": "padded", "address": "http://127.0.0.1:9/"}'
    return core + b" " * (size - len(core))


async def in_chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is on a fresh connection; the status, headers and body read."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(10):
            writer.write(request)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
    return status, headers, body


async def test_the_server_answers_413_to_a_large_content_length_before_any_body_is_sent(
    web: WebApp,
) -> None:
    head = (
        "POST /devices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    status, headers, body = await raw_exchange(web.url, head)  # not one byte of body
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}
    assert (await web.client.get("/devices")).json() == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_one_byte_over_a_mebibyte_is_refused_and_one_of_a_mebibyte_is_not(
    web: WebApp, chunked: bool
) -> None:
    def send(data: bytes) -> Any:
        content = in_chunks(data) if chunked else data
        return web.client.post(
            "/devices", content=content, headers={"content-type": "application/json"}
        )

    refused = await send(device_body(MAX_BODY_BYTES + 1))
    assert refused.status_code == 413 and "larger than" in refused.json()["detail"]
    assert (await web.client.get("/devices")).json() == []

    accepted = await send(device_body(MAX_BODY_BYTES))
    assert accepted.status_code == 201, accepted.text
    assert [d["name"] for d in (await web.client.get("/devices")).json()] == ["padded"]


async def test_the_connection_serves_the_next_request_after_a_413(web: WebApp) -> None:
    big = device_body(3 * MAX_BODY_BYTES)
    for _ in range(2):  # httpx reuses the one keep-alive connection
        r = await web.client.post(
            "/devices", content=in_chunks(big), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert (await web.client.get("/health")).status_code == 200


async def test_the_spec_documents_the_413_on_every_operation_with_a_body(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert ("413" in operation["responses"]) == ("requestBody" in operation), (
                method,
                path,
            )
