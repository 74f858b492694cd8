"""The web app served for tests: real uvicorn on a free port in the test's event loop, a
real NATS connection and SQLite, an httpx client and WebSocket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from taskiq import AsyncBroker
from websockets.asyncio.client import ClientConnection, connect

from core.natsconn import connect as nats_connect
from core.natsserver import free_port
from core.settings import Settings
from jobs.events import EventPublisher
from jobs.probe.scheduler import ProbeScheduler
from jobs.recorder.client import RecorderClient
from jobs.worker import recorder_check
from storage.installation import installation_id
from web.app import create_app
from web.hub import Hub
from web.server import server_config
from web.services import Services


class _Server(uvicorn.Server):
    """uvicorn without signal capture: pytest owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class WebApp:
    url: str
    app: Starlette
    services: Services
    client: httpx.AsyncClient

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    def ws_url(self, query: str = "") -> str:
        return self.url.replace("http://", "ws://") + "/ws/items" + (f"?{query}" if query else "")

    @contextlib.asynccontextmanager
    async def websocket(self, query: str = "", **kwargs: Any) -> AsyncIterator[ClientConnection]:
        """A connected client, counted by the hub before it is handed out."""
        before = self.hub.clients
        async with connect(self.ws_url(query), **kwargs) as ws:
            async with asyncio.timeout(10):
                while self.hub.clients <= before:  # subscribed: no later event is missed
                    await asyncio.sleep(0.01)
            yield ws


@contextlib.asynccontextmanager
async def serve_app(
    settings: Settings,
    engine: AsyncEngine,
    broker: AsyncBroker,
    *,
    scheduler: ProbeScheduler | None = None,
    nc: Client | None = None,
) -> AsyncIterator[WebApp]:
    own_nc = nc is None
    conn = nc if nc is not None else await nats_connect(settings, "test-web")
    installation = await installation_id(engine)
    services = Services(
        settings=settings,
        engine=engine,
        broker=broker,
        nc=conn,
        events=EventPublisher(conn, settings.events_subject, "test-web", installation),
        installation_id=installation,
        scheduler=scheduler,
        recorder_check=recorder_check(RecorderClient(settings, connection=conn)),
    )
    app = create_app(services)
    port = free_port()
    server = _Server(server_config(app, settings, "127.0.0.1", port))
    task = asyncio.create_task(server.serve(), name="test-web")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("test web server did not start")
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    # With API_TOKEN set, the client carries it; tests of refusals make their own.
    token = settings.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
            yield WebApp(url=url, app=app, services=services, client=client)
    finally:
        server.should_exit = True
        await task
        if own_nc:
            await conn.drain()


async def receive_until(
    ws: ClientConnection,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read events until one matches; returns it and everything read before it."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            if predicate(event):
                return event, seen
            seen.append(event)


def of_type(kind: str, **payload: Any) -> Callable[[dict[str, Any]], bool]:
    """Matches events of type ``kind`` whose payload has the given values."""

    def match(event: dict[str, Any]) -> bool:
        if event.get("type") != kind:
            return False
        body = event.get("payload")
        return all(isinstance(body, dict) and body.get(k) == v for k, v in payload.items())

    return match


@contextlib.asynccontextmanager
async def served(
    settings: Settings, engine: AsyncEngine, *, worker: bool = False, **serve_kw: Any
) -> AsyncIterator[WebApp]:
    """The app on a broker of its own, with an in-process worker when ``worker``."""
    from tests.helpers import running_worker

    async with (
        running_worker(settings, worker=worker) as broker,
        serve_app(settings, engine, broker, **serve_kw) as web,
    ):
        yield web
