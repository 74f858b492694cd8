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

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import error_response
from web.spec import Refusal

__all__ = [
    "MAX_BODY_BYTES",
    "WS_MAX_MESSAGE_BYTES",
    "BodyLimit",
    "BodyTooLarge",
    "body_limit_refusal",
]

MAX_BODY_BYTES = 1024 * 1024
WS_MAX_MESSAGE_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """Raised by the counting ``receive`` once a body passes the limit."""


def _too_large(limit: int) -> Response:
    # No "Connection: close": the HTTP server discards the rest of the body after the
    # answer, so a client still sending reads the 413 instead of a reset connection.
    return error_response(413, f"request body larger than {limit} bytes")


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
            await _too_large(self.max_bytes)(scope, receive, send)
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
            await _too_large(self.max_bytes)(scope, receive, send)


def body_limit_refusal(max_bytes: int = MAX_BODY_BYTES) -> Refusal:
    """The 413, for the spec of every operation that takes a body."""
    return Refusal(
        413,
        f"The body is larger than {max_bytes} bytes",
        applies=lambda path, operation: "requestBody" in operation,
    )
