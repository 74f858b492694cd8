"""``ws://host:8002/ws/items``: one WebSocket client, subscribed to the :class:`web.hub.Hub`.

Client text ``"ping"`` gets ``{"type": "pong"}``, any other text ``{"type": "echo",
"payload": "<text>"}``.  A client that does not read fast enough is closed with
:data:`web.hub.SLOW_CLIENT_CLOSE`.

A handshake that cannot be served (a filter that cannot be parsed, an unknown event type,
a path with no WebSocket endpoint) is accepted and at once closed with
:data:`REFUSED_CLOSE` (1008, policy violation), after one ``{"type": "error",
"payload": {"detail": "<why>"}}`` message; the close reason repeats the detail, cut to
the 123 bytes a close frame holds.  (Refusing before the accept would make the server
answer a bare HTTP 403, which no browser lets a page read.)
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket

from web.hub import SLOW_CLIENT_CLOSE, EventFilter, FilterError, Hub, Subscriber

log = logging.getLogger(__name__)

REFUSED_CLOSE = 1008
# A close frame's reason is at most 123 bytes (RFC 6455, 5.5).
MAX_CLOSE_REASON_BYTES = 123
ERROR = "error"
ITEMS_PATH = "/ws/items"
# How long a dropped client may take to accept the close frame before we give up on it.
CLOSE_GRACE_SECONDS = 10.0


def hub_of(websocket: WebSocket) -> Hub:
    hub: Hub = websocket.app.state.hub
    return hub


async def items_socket(websocket: WebSocket) -> None:
    """The ``/ws/items`` endpoint: one subscriber per connection."""
    hub = hub_of(websocket)
    try:
        event_filter = EventFilter.parse(websocket.query_params)
    except FilterError as exc:
        await refuse(websocket, str(exc))
        return
    await websocket.accept()
    async with hub.subscribe(event_filter) as sub:
        tasks = {
            asyncio.create_task(_pump(websocket, sub), name=f"ws-pump:{sub.id}"),
            asyncio.create_task(_read(websocket, hub, sub), name=f"ws-read:{sub.id}"),
            asyncio.create_task(sub.dropped.wait(), name=f"ws-dropped:{sub.id}"),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if sub.dropped.is_set():
            await _close(websocket, SLOW_CLIENT_CLOSE, "too slow: event queue overflowed")
    log.debug("ws client gone client=%d", sub.id)


async def unknown_socket(websocket: WebSocket) -> None:
    """Any other WebSocket path: refused with a reason rather than a bare 403."""
    await refuse(websocket, f"no WebSocket endpoint at {websocket.url.path[:60]}; use {ITEMS_PATH}")


async def refuse(websocket: WebSocket, detail: str) -> None:
    """Accept, say why in one ``error`` message, close with :data:`REFUSED_CLOSE`."""
    log.info("ws refused path=%s detail=%s", websocket.url.path[:60], detail)
    await websocket.accept()
    try:
        await websocket.send_json({"type": ERROR, "payload": {"detail": detail}})
    except Exception as exc:  # the client is already gone
        log.debug("ws refusal not sent error=%r", exc)
        return
    await _close(websocket, REFUSED_CLOSE, close_reason(detail))


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame holds, on a character boundary (pure).

    >>> close_reason("x" * 200) == "x" * 120 + "..."
    True
    """
    if len(text.encode()) <= MAX_CLOSE_REASON_BYTES:
        return text
    cut = text.encode()[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore")
    return cut + "..."


async def _pump(websocket: WebSocket, sub: Subscriber) -> None:
    while True:
        await websocket.send_text(await sub.take())


async def _read(websocket: WebSocket, hub: Hub, sub: Subscriber) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        if text.strip() == "ping":
            hub.send(sub, {"type": "pong"})
        else:
            hub.send(sub, {"type": "echo", "payload": text})


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close, unless the client is gone or too stuck to take the close frame in time."""
    try:
        async with asyncio.timeout(CLOSE_GRACE_SECONDS):
            await websocket.close(code=code, reason=reason)
    except Exception as exc:
        log.debug("ws close failed code=%d error=%r", code, exc)
