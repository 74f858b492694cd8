"""Local HTTP targets for probe tests: a tiny Starlette app served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def fail(request: Request) -> Response:
    return PlainTextResponse("boom", status_code=500)


async def status(request: Request) -> Response:
    return PlainTextResponse("status", status_code=int(request.path_params["code"]))


async def hang(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "30")))
    return PlainTextResponse("late")


# Requests seen by /gate/{name}, counted in the test process (the server runs in a thread).
arrivals: dict[str, int] = {}


async def gate(request: Request) -> Response:
    """Counts each arrival, then answers after ``?s=`` seconds."""
    name = request.path_params["name"]
    arrivals[name] = arrivals.get(name, 0) + 1
    await asyncio.sleep(float(request.query_params.get("s", "0")))
    return PlainTextResponse("gate")


# Status answered by /switch/{name}, set by the test process (default 200).
switches: dict[str, int] = {}


async def switch(request: Request) -> Response:
    """Answers the status the test set for this name: a target that goes down and up."""
    code = switches.get(request.path_params["name"], 200)
    return PlainTextResponse("switch", status_code=code)


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("ms", "100")) / 1000)
    return PlainTextResponse("slow")


async def redirect_loop(request: Request) -> Response:
    return RedirectResponse("/loop", status_code=302)


async def hops(request: Request) -> Response:
    """``/hops/n``: n redirects in a row before ``ok`` (``/hops/0``)."""
    n = request.path_params["n"]
    if n == 0:
        return PlainTextResponse("ok")
    return RedirectResponse(f"/hops/{n - 1}", status_code=302)


async def cookie_set(request: Request) -> Response:
    response = PlainTextResponse("set")
    response.set_cookie("session", "from-the-target")
    return response


async def cookie_echo(request: Request) -> Response:
    """The Cookie header the request carried, or ``none``."""
    return PlainTextResponse(request.headers.get("cookie", "none"))


async def health_json(request: Request) -> Response:
    """``{"status": ?status=, "checks": [...]}`` (default UP), for [BODY] conditions."""
    return JSONResponse({"status": request.query_params.get("status", "UP"), "checks": [1, 2]})


async def echo(request: Request) -> Response:
    """The request as it arrived: method, headers (lower-case names) and body."""
    body = await request.body()
    return JSONResponse(
        {"method": request.method, "headers": dict(request.headers), "body": body.decode()}
    )


async def moved(request: Request) -> Response:
    return RedirectResponse("/ok", status_code=301)


async def endless(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        while True:
            yield chunk
            await asyncio.sleep(0)

    return StreamingResponse(body())


app = Starlette(
    routes=[
        Route("/ok", ok),
        Route("/fail", fail),
        Route("/status/{code:int}", status),
        Route("/hang", hang),
        Route("/slow", slow),
        Route("/loop", redirect_loop),
        Route("/hops/{n:int}", hops),
        Route("/endless", endless),
        Route("/cookie/set", cookie_set),
        Route("/cookie/echo", cookie_echo),
        Route("/gate/{name}", gate),
        Route("/json", health_json),
        Route("/echo", echo, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/moved", moved),
        Route("/switch/{name}", switch),
    ]
)


class ThreadedServer:
    """uvicorn in a daemon thread; ``url`` once started."""

    def __init__(self, asgi_app: ASGIApp, port: int) -> None:
        config = uvicorn.Config(
            asgi_app,
            host="127.0.0.1",
            port=port,
            log_level="warning",  # type: ignore[arg-type]
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test HTTP target did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
