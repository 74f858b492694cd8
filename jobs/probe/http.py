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
from collections.abc import Mapping
from typing import Any

import httpx
from aiohttp import ClientSession, ClientTimeout
from httpx_aiohttp import HttpxAiohttpClient
from httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport, map_aiohttp_exceptions

from core.settings import Settings

USER_AGENT = "fleetprobe/0.1"

# Parsed probe addresses: httpx parses a URL in pure Python on every request (~25 us),
# and a fleet probes the same addresses again and again.  ~0.5 kB an entry.
URL_CACHE_SIZE = 16384

# Prepared requests kept per client (one a device and timeout): building an httpx.Request
# (URL and headers merged with the client's, Headers normalised, Host set, the timeout
# dict: ~10 us, 11 % of the scheduler's main thread at saturation) is the same work for
# the same device every time (docs/performance.md).
PREPARED_CACHE_SIZE = 16384

# (key, value) pairs of a device's headers, or None; hashable, for the cache key.
HeaderItems = tuple[tuple[str, str], ...] | None


class NoCookies(httpx.Cookies):
    """A cookie jar that never takes a cookie from a response (so never sends one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Stateless(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = NoCookies()
        self.prepared: dict[tuple[str, float, str, HeaderItems, str | None], httpx.Request] = {}


def prepared_request(
    client: httpx.AsyncClient,
    address: str,
    url: httpx.URL,
    timeout: float,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> httpx.Request:
    """``client.build_request(...)`` for this device, built once and sent again and again
    (``client.send(request, stream=True)``, httpx's documented way to send a request
    instance).

    Sharing one request between sends is safe: nothing on the send path changes it (the
    client keeps no cookies; a URL's user:password sets the same Authorization header each
    time).  A client that is not this module's builds a new request every time."""
    cache = client.prepared if isinstance(client, _Stateless) else None
    items: HeaderItems = tuple(headers.items()) if headers else None
    key = (address, timeout, method, items, body)
    if cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    request = client.build_request(
        method,
        url,
        timeout=timeout,
        headers=headers,
        content=body.encode() if body is not None else None,
    )
    if cache is not None:
        if len(cache) >= PREPARED_CACHE_SIZE:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = request
    return request


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> ClientTimeout:
    # httpx-aiohttp's mapping of httpx's timeouts, built once per value (ClientTimeout is
    # frozen).
    return ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class ProbeTransport(AiohttpTransport):
    """httpx-aiohttp's transport without its per-request work that a probe does not need:
    the same aiohttp call, exceptions mapped the same way, the same ``httpx.Response``.

    Trimmed: the ``ClientTimeout`` is built once per timeout value; the request's headers
    go to aiohttp as a dict of what aiohttp would have read from them (it converted
    ``httpx.Headers`` key by key through ``Headers.__getitem__``, each decoding and
    joining the whole list: 7 % of the scheduler's main thread at saturation); the proxy
    arguments are not computed (``trust_env=False`` and no proxy: a transport given one
    goes through httpx-aiohttp's own code)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxy is not None:
            return await super().handle_async_request(request)
        client = self.client
        if not isinstance(client, ClientSession):
            client = self.client = self.get_client()
        extensions = request.extensions
        timeout = extensions.get("timeout", {})
        with map_aiohttp_exceptions():
            data: bytes | httpx.AsyncByteStream | None
            try:
                data = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # handled by aiohttp
            # items(): the lower-cased names and comma-joined values that aiohttp's own
            # conversion of the Headers mapping produced, in one pass.
            headers = dict(request.headers.items())
            response = await client.request(
                method=request.method,
                url=str(request.url),
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=_client_timeout(
                    timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                ),
                server_hostname=extensions.get("sni_hostname"),
            ).__aenter__()
        response_extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            response_extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=response_extensions,
        )


class StockProbeClient(_Stateless):
    """httpx's own transport (``HTTP_ENGINE=httpx``), keeping no cookies."""


_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx-aiohttp's


class AiohttpProbeClient(_Stateless, HttpxAiohttpClient):  # type: ignore[misc]
    """httpx's API over aiohttp (``HTTP_ENGINE=aiohttp``, :class:`ProbeTransport`),
    keeping no cookies."""

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        return ProbeTransport(
            verify=verify, cert=cert, trust_env=trust_env, http1=http1, http2=http2, limits=limits
        )


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
