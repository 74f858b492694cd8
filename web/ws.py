"""``ws://host:8002/ws/items``: one WebSocket client, subscribed to the :class:`web.hub.Hub`.

Client text ``"ping"`` gets ``{"type": "pong"}``, any other text ``{"type": "echo",
"payload": "<text>"}``.  A filter that cannot be parsed closes the connection with
:data:`BAD_FILTER_CLOSE`; a client that does not read fast enough is closed with
:data:`web.hub.SLOW_CLIENT_CLOSE`.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket

from web.hub import SLOW_CLIENT_CLOSE, EventFilter, FilterError, Hub, Subscriber

log = logging.getLogger(__name__)

BAD_FILTER_CLOSE = 1008
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
        await websocket.close(code=BAD_FILTER_CLOSE, reason=str(exc))
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
