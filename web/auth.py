"""Who may call the API: with ``API_TOKEN`` set, everyone who presents it, and nobody else.

:class:`BearerAuth` is a pure ASGI middleware in front of every route.  A request carries
the token as ``Authorization: Bearer <token>``; a WebSocket handshake carries it so or, as
browsers cannot set headers there, as the query parameter ``?token=<token>`` (the header
wins when both are sent).  A REST request is never let in by ``?token=`` (a token in a URL
ends up in histories, logs and bookmarks), nor ever by a cookie: a browser sends cookies
on its own to any page's requests, the header only when our own page's code sets it, so
no other site's page can ride the token (CSRF).  Without it:

- HTTP: 401 ``{"detail": ...}`` with ``WWW-Authenticate: Bearer``;
- WebSocket: the handshake is refused with the same HTTP 401 (no connection is opened;
  a server without the ASGI denial-response extension answers 403 instead).

Public, token or not: ``/health`` (for load balancers and monitors), ``/openapi.json``
and ``/swagger`` with its assets: they hold no data, and Swagger's "Authorize" button
needs the page and the spec to take the token; likewise the dashboard page ``/`` and its
files under ``/dashboard/assets/`` (it asks for the token and sends it in the header);
and the read-only public face, ``/status-page`` and ``/badges/...``, which shows only the
devices marked public.  ``/metrics`` is public only with ``METRICS_PUBLIC=true`` (a
Prometheus that cannot send the token).  Tokens are compared in constant time.
The ``token`` parameter is taken out of the query string by :class:`HideQueryToken`, the
outermost middleware, before anything can answer (no endpoint has such a parameter), and
so out of uvicorn's access log with it, refusals of the browser guards included (they
answer before the token is checked); prefer the header all the same: a proxy in front may
log query strings.

Without ``API_TOKEN`` nothing is checked: bind to 127.0.0.1 only (the default);
:func:`warn_if_exposed` says so loudly when the host is anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from urllib.parse import unquote_to_bytes

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from web import dashboard, status_page, swagger
from web.errors import error_response
from web.spec import Refusal

__all__ = [
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "QUERY_TOKEN",
    "UNAUTHORIZED",
    "BearerAuth",
    "HideQueryToken",
    "is_loopback",
    "split_token",
    "take_query_token",
    "warn_if_exposed",
]

log = logging.getLogger(__name__)

# The dashboard page and its files hold no data (the page asks for the token itself); the
# status page and the badges show only devices marked public, read-only (web/status_page.py).
# Each module that serves public paths names them; they are gathered here.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/swagger", "/"}) | status_page.PUBLIC_PATHS
PUBLIC_PREFIXES = (f"{swagger.ASSETS}/", f"{dashboard.ASSETS}/", *status_page.PUBLIC_PREFIXES)
TOKEN_PARAM = "token"
_TOKEN_PARAM = TOKEN_PARAM.encode()
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _digest(token: str | bytes) -> bytes:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def _bearer(scope: Scope) -> bytes | None:
    """The credentials of an ``Authorization: Bearer`` header; None without the header."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            return credentials.strip() if scheme.lower() == b"bearer" else b""
    return None


def split_token(query_string: bytes) -> tuple[bytes | None, bytes]:
    """The ``token`` parameter and the query string without it (other bytes unchanged).

    >>> split_token(b"types=tick&token=s%3Dcret&device_id=1")
    (b's=cret', b'types=tick&device_id=1')
    """
    token: bytes | None = None
    kept: list[bytes] = []
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        if _unquote(name) == _TOKEN_PARAM:
            token = _unquote(value)
        else:
            kept.append(part)
    return token, b"&".join(kept)


def _unquote(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


QUERY_TOKEN = "fleetprobe.query_token"
"""The scope key under which :func:`take_query_token` keeps the token it took."""


def take_query_token(scope: Scope) -> bytes | None:
    """The ``token`` query parameter, taken out of ``scope["query_string"]``; once: a
    second call answers what the first one took.

    In place, not a copy: uvicorn's access log reads this very scope when the answer goes
    out, and a token in a log line is a token leaked.

    >>> scope = {"query_string": b"types=tick&token=abc"}
    >>> take_query_token(scope), scope["query_string"], take_query_token(scope)
    (b'abc', b'types=tick', b'abc')
    """
    if QUERY_TOKEN not in scope:
        token, rest = split_token(scope.get("query_string", b""))
        if token is not None:
            scope["query_string"] = rest
        scope[QUERY_TOKEN] = token
    taken: bytes | None = scope[QUERY_TOKEN]
    return taken


class HideQueryToken:
    """Outermost: take ``?token=`` out of every request's query string before any
    middleware can answer (the guards refuse before :class:`BearerAuth` runs, and uvicorn
    logs the path of each answer); :class:`BearerAuth` reads it from the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            take_query_token(scope)
        await self.app(scope, receive, send)


class BearerAuth:
    """Refuse every request and WebSocket but the public ones unless it carries ``token``."""

    def __init__(self, app: ASGIApp, token: str, also_public: frozenset[str] = frozenset()) -> None:
        """``also_public``: paths let in without the token besides :data:`PUBLIC_PATHS`
        (``/metrics`` with ``METRICS_PUBLIC=true``)."""
        if not token:
            raise ValueError("an empty API token would let everyone in")
        self.app = app
        self._digest = _digest(token)
        self._public = PUBLIC_PATHS | also_public

    def is_public(self, path: str) -> bool:
        return path in self._public or path.startswith(PUBLIC_PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query_token = take_query_token(scope)
        if self.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        header_token = _bearer(scope)
        given = header_token
        if given is None and scope["type"] == "websocket":
            given = query_token
        if given is None:
            detail = "missing API token (Authorization: Bearer ...)"
            if query_token is not None:
                detail += "; ?token= is taken on WebSocket handshakes only"
            await self._refuse(scope, receive, send, detail)
        elif not hmac.compare_digest(_digest(given), self._digest):
            await self._refuse(scope, receive, send, "invalid API token")
        else:
            await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        log.info("unauthorized %s path=%r reason=%s", scope["type"], scope["path"], detail)
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            # A WebSocket handshake gets the same HTTP answer (the denial-response extension).
            await error_response(401, detail, _CHALLENGE)(scope, receive, send)
        else:  # the server cannot send an HTTP answer to a handshake: it sends 403
            await send({"type": "websocket.close", "code": 1008, "reason": detail})


UNAUTHORIZED = Refusal(
    401,
    "No API token, or a wrong one",
    applies=lambda path, operation: path not in PUBLIC_PATHS,
    headers={"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    schemes={
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "API_TOKEN, sent as Authorization: Bearer <token>",
        },
    },
)
"""The 401 and the bearer token for the spec, so that Swagger's "Authorize" button works
and clients know every non-public operation may answer 401 (``?token=`` is for WebSocket
handshakes only, which the spec does not describe)."""


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3")]
    [True, True, True, False, False]
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def warn_if_exposed(host: str, api_token: SecretStr | None) -> bool:
    """Log a WARNING when the API would listen beyond this machine without a token;
    True when it did."""
    if api_token is not None or is_loopback(host):
        return False
    log.warning(
        "web app listens on host=%s without API_TOKEN: anyone who reaches this address can "
        "read and change devices and drive the recorder; set API_TOKEN or bind to 127.0.0.1",
        host,
    )
    return True
