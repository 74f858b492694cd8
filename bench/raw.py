"""Scenario 1, the raw ceiling: N GETs from one process with the worker's HTTP stack
(``jobs.probe.http.make_http_client`` + ``jobs.probe.run.run_probe``), no queue, no database.

Run by ``bench.run`` in a fresh child process per engine, so engines never share a loop,
a pool or a warm cache:

    python -m bench.raw --engine aiohttp --url http://127.0.0.1:8080/ --n 4000

Engines: ``aiohttp`` and ``httpx`` are the worker's ``HTTP_ENGINE`` settings; ``httpx2``
(the fork, only when installed) and ``aiohttp-raw`` (aiohttp without httpx's API) are
references that say what the httpx layer costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from bench.stats import percentile
from core.loop import run
from core.settings import EventLoop, Settings
from jobs.probe.http import make_http_client
from jobs.probe.run import run_probe

Get = Callable[[], Awaitable[bool]]


async def _drive(get: Get, n: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    ok = 0
    remaining = n

    async def worker() -> None:
        nonlocal ok, remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            if await get():
                ok += 1
            latencies.append((time.perf_counter() - t) * 1000)

    started = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {
        "n": n,
        "ok": ok,
        "seconds": round(elapsed, 3),
        "rps": round(n / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "cpu_us_per_req": round(cpu / n * 1e6, 1),
    }


def _engine(engine: str, url: str) -> tuple[Get, Callable[[], Awaitable[None]]]:
    """One GET of ``url`` with ``engine``, and how to close what it opened."""
    if engine in ("aiohttp", "httpx"):
        settings = Settings(HTTP_ENGINE=engine, PROBE_TIMEOUT_SECONDS=10)  # type: ignore[call-arg]
        client = make_http_client(settings)

        async def get() -> bool:
            result = await run_probe(
                client, url, 10.0, body_max_bytes=settings.probe_body_max_bytes
            )
            return result.status_up

        return get, client.aclose
    if engine == "httpx2":
        import httpx2

        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
        h2client = httpx2.AsyncClient(limits=limits, timeout=10.0, trust_env=False)

        async def get2() -> bool:
            # Duck-typed: httpx2 keeps httpx's API; run_probe calls .build_request() and
            # .send(stream=True) on it.
            result = await run_probe(h2client, url, 10.0)  # type: ignore[arg-type]
            return result.status_up

        return get2, h2client.aclose
    if engine == "aiohttp-raw":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

        async def get3() -> bool:
            async with session.get(url) as response:
                await response.read()
                return response.status < 500

        return get3, session.close
    raise SystemExit(f"unknown engine {engine!r}")


async def measure(engine: str, url: str, n: int, concurrency: int) -> dict[str, Any]:
    get, close = _engine(engine, url)
    try:
        await _drive(get, min(200, n), concurrency)  # warm-up: connections, first calls
        return await _drive(get, n, concurrency)
    finally:
        await close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=200)
    # The loop scheduler.py would run on (EVENT_LOOP), so the ratio compares like with like.
    p.add_argument(
        "--loop", choices=get_args(EventLoop), default=os.environ.get("EVENT_LOOP", "auto")
    )
    args = p.parse_args()
    result = run(measure(args.engine, args.url, args.n, args.concurrency), args.loop)
    result["engine"] = args.engine
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
