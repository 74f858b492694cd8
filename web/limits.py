"""What the web app accepts at most: request bodies and WebSocket messages.

:class:`BodyLimit` is a pure ASGI middleware that answers 413 ``{"detail": ...}`` to a
request whose body is larger than :data:`MAX_BODY_BYTES`:

- with a ``Content-Length`` above the limit, at once, before a byte of the body is read;
- with a chunked body (no length), as soon as the bytes received pass the limit: the
  ``receive`` it hands the app raises :class:`BodyTooLarge`, so the handler stops while
  still reading and nothing is written.

The largest valid body of the API is a few kilobytes; 1 MiB leaves room and still keeps
a client from making a worker buffer megabytes.  WebSocket clients only send ``ping`` or
short texts: uvicorn closes a connection whose message is above
:data:`WS_MAX_MESSAGE_BYTES` (close code 1009, "message too big") without buffering it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MAX_BODY_BYTES",
    "WS_MAX_MESSAGE_BYTES",
    "BodyLimit",
    "BodyTooLarge",
    "describe_body_limit",
]

MAX_BODY_BYTES = 1024 * 1024
_ERROR_REF = "#/components/schemas/ErrorBody"
WS_MAX_MESSAGE_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """Raised by the counting ``receive`` once a body passes the limit."""


def _too_large(limit: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    # No "Connection: close": the HTTP server discards the rest of the body after the
    # answer, so a client still sending reads the 413 instead of a reset connection.
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the HTTP server refuses it before we run
    return None


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413, without reading them."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:  # a handler answered before reading everything: nothing to add
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body, headers = _too_large(self.max_bytes)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def describe_body_limit(spec: dict[str, Any], max_bytes: int = MAX_BODY_BYTES) -> None:
    """Document the 413 on every operation that takes a body."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            if "requestBody" not in operation:
                continue
            responses = operation["responses"]
            responses.setdefault(
                "413",
                {
                    "description": f"The body is larger than {max_bytes} bytes",
                    "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
                },
            )
            operation["responses"] = dict(sorted(responses.items()))
