"""A webhook receiver for tests: a real HTTP server in a thread that records every request
and answers from a plan of status codes (then 200), optionally slowly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from core.natsserver import free_port
from tests.targets import ThreadedServer


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw)
        return data


@dataclass
class Receiver:
    plan: list[int] = field(default_factory=list)
    delay_seconds: float = 0.0
    # Per request in turn (then delay_seconds): e.g. [2.0] holds only the first answer.
    delays: list[float] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        with self.lock:
            self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, raw))
            status = self.plan.pop(0) if self.plan else 200
            delay = self.delays.pop(0) if self.delays else self.delay_seconds
        if delay:
            await asyncio.sleep(delay)
        await JSONResponse({"received": True}, status_code=status)(scope, receive, send)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@contextlib.contextmanager
def receiver(
    plan: list[int] | None = None, delay_seconds: float = 0.0, delays: list[float] | None = None
) -> Iterator[Receiver]:
    app = Receiver(plan=list(plan or []), delay_seconds=delay_seconds, delays=list(delays or []))
    server = ThreadedServer(app, free_port()).start()
    app.url = server.url + "/hook"
    try:
        yield app
    finally:
        server.stop()


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
