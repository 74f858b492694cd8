"""The one HTTP client of a worker process.

``HTTP_ENGINE=aiohttp`` (default) runs httpx's API over aiohttp's connection pool
(``httpx-aiohttp``): several times the throughput of httpx's own httpcore pool here, see
docs/performance.md.  ``HTTP_ENGINE=httpx`` keeps the stock transport.
"""

from __future__ import annotations

import httpx

from core.settings import Settings

USER_AGENT = "fleetprobe/0.1"


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """Build the shared client; never build one per probe (an SSL context each time)."""
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
        keepalive_expiry=30,
    )
    timeout = httpx.Timeout(settings.probe_timeout_seconds)
    client_class = httpx.AsyncClient
    if settings.http_engine == "aiohttp":
        from httpx_aiohttp import HttpxAiohttpClient

        client_class = HttpxAiohttpClient
    return client_class(
        limits=limits,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_redirects=10,
        trust_env=False,
    )
