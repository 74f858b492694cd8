"""The one HTTP client of a worker process.

``HTTP_ENGINE=aiohttp`` (default) runs httpx's API over aiohttp's connection pool
(``httpx-aiohttp``): several times the throughput of httpx's own httpcore pool here, see
docs/performance.md.  ``HTTP_ENGINE=httpx`` keeps the stock transport.

Either way the client keeps no cookies: each probe stands alone, as a probe of curl
without a cookie jar would.  A shared jar would carry what one probe's target set into
the next probe of it and grow with every device that sets one; extracting cookies from
every response also cost about 15 % of a GET (docs/performance.md).
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from core.settings import Settings

USER_AGENT = "fleetprobe/0.1"

# Parsed probe addresses: httpx parses a URL in pure Python on every request (~25 us),
# and a fleet probes the same addresses again and again.  ~0.5 kB an entry.
URL_CACHE_SIZE = 16384


class NoCookies(httpx.Cookies):
    """A cookie jar that never takes a cookie from a response (so never sends one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Stateless(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = NoCookies()


class StockProbeClient(_Stateless):
    """httpx's own transport (``HTTP_ENGINE=httpx``), keeping no cookies."""


class AiohttpProbeClient(_Stateless, HttpxAiohttpClient):  # type: ignore[misc]
    """httpx's API over aiohttp (``HTTP_ENGINE=aiohttp``), keeping no cookies."""


@functools.lru_cache(maxsize=URL_CACHE_SIZE)
def probe_url(address: str) -> httpx.URL:
    """``address`` parsed once; raises ``httpx.InvalidURL`` as ``httpx.URL`` does."""
    return httpx.URL(address)


def peer_der(response: httpx.Response) -> bytes | None:
    """The peer's DER certificate of an https response still open, when the engine
    exposes its connection (httpx's own transport: httpcore's ``network_stream``
    extension); None otherwise (httpx-aiohttp puts none; plain http has no ``ssl_object``)."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    return ssl_object.getpeercert(binary_form=True) or None


def make_http_client(settings: Settings, *, verify: bool = True) -> httpx.AsyncClient:
    """Build the shared client; never build one per probe (an SSL context each time).

    ``verify=False``: the client of the devices whose ``verify_tls`` is off (a second
    pool: httpx sets verification per client, not per request)."""
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
        keepalive_expiry=30,
    )
    timeout = httpx.Timeout(settings.probe_timeout_seconds)
    client_class: type[httpx.AsyncClient] = StockProbeClient
    if settings.http_engine == "aiohttp":
        client_class = AiohttpProbeClient
    return client_class(
        limits=limits,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_redirects=10,
        trust_env=False,
        verify=verify,
    )
