"""Serving the web app with uvicorn: its configuration (one place for ``scheduler.py``
and the tests) and :func:`serve`, the web server hosted on the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette

from core.settings import Settings
from web.limits import WS_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


def server_config(app: Starlette, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # permessage-deflate costs ~45 us of CPU per event per client (0.1 core for one
        # client at 2,000 events/s): off unless asked for (docs/performance.md).
        ws_per_message_deflate=settings.ws_compression,
    )


class WebStartError(RuntimeError):
    """The web app could not listen where it was told to."""


def listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _HostedServer(uvicorn.Server):
    """uvicorn without its own signal capture: the host process owns SIGINT/SIGTERM and
    stops the server in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else of the process starts (a port in
    use is reported first).  Bound here, not by uvicorn: its bind failure is sys.exit(),
    which would take the event loop down before anything (the embedded nats-server) is
    stopped.  Raises :class:`WebStartError`."""
    try:
        return listen_socket(host, port)
    except OSError as exc:
        raise WebStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


async def serve(
    app: Starlette, settings: Settings, sock: socket.socket, host: str, port: int
) -> Callable[[], Awaitable[None]]:
    """Start serving ``app`` on ``sock`` (from :func:`bind`) on this event loop; returns
    the coroutine function that stops it.  Raises :class:`WebStartError`."""
    config = server_config(app, settings, host, port)
    server = _HostedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    # uvicorn offers no "started" event to await; poll its flag briefly.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if task.done():
        sock.close()
        raise WebStartError(f"web server did not start on {host}:{port}")
    log.info("web listening url=http://%s:%d swagger=/swagger ws=/ws/items", host, port)

    async def stop_web() -> None:
        server.should_exit = True
        await task

    return stop_web
