"""No web page may drive fleetprobe: the checks in front of every route (docs/security.md).

A browser on the operator's machine reaches the web port even when it is bound to
127.0.0.1, and it sends whatever a page on any web site asks it to.  Three pure ASGI
middlewares, outermost first, each refusing with the one JSON error shape and one log
line before anything is read or written (and before the token is looked at):

- :class:`HostGuard`: a ``Host`` header that is not in ``ALLOWED_HOSTS`` gets 400.  A
  page that re-binds its own DNS name to 127.0.0.1 (DNS rebinding) would otherwise read
  the whole API as if it were same-origin; its requests carry its own name as ``Host``.
- :class:`OriginGuard`: a WebSocket handshake, or a request with a method that may change
  something (anything but GET, HEAD and OPTIONS), whose ``Origin`` header is present and
  neither the server's own origin (as its ``Host`` names it) nor in ``ALLOWED_ORIGINS``
  gets 403.  Browsers always send ``Origin`` there; scripts, curl and the recorder CLI
  send none and are let through.  This stops cross-site WebSocket reads of the event
  feed and cross-site POSTs without a body (``POST /jobs/probe`` and the recorder
  commands take an empty body).
- :class:`JsonOnly`: a request with a body whose ``Content-Type`` is not
  ``application/json`` or ``application/*+json`` gets 415.  A page can send text/plain,
  form and multipart bodies cross-site without the browser asking the server first (a
  "simple" request); a JSON content type makes the browser ask (CORS preflight), and
  fleetprobe answers no preflight.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from core.hosts import (
    LOCAL_HOSTS,
    Origin,
    default_allowed_hosts,
    host_allowed,
    is_wildcard_bind,
    parse_host,
    parse_origin,
    same_origin,
)
from core.settings import Settings
from web.errors import error_response
from web.spec import Refusal

__all__ = [
    "SAFE_METHODS",
    "HostGuard",
    "JsonOnly",
    "OriginGuard",
    "allowed_hosts",
    "guard_refusals",
    "is_json_media_type",
]

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXPECTED_TYPE = "application/json"
# application/json, or a structured syntax suffix: application/merge-patch+json, ...
_JSON_TYPE = re.compile(r"^application/(?:[a-z0-9!#$&^_.-]+\+)?json$")


def is_json_media_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` value names JSON (parameters such as ``charset`` aside).

    >>> [is_json_media_type(v) for v in ("application/json; charset=utf-8", "text/plain")]
    [True, False]
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    return bool(_JSON_TYPE.match(media_type))


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
        # A WebSocket handshake gets the same HTTP answer (the denial-response extension).
        await error_response(status, detail)(scope, receive, send)
    else:  # the server cannot send an HTTP answer to a handshake: it sends 403
        await send({"type": "websocket.close", "code": 1008, "reason": detail})


def allowed_hosts(settings: Settings, bind_host: str) -> tuple[str, ...]:
    """``ALLOWED_HOSTS``, or its default for ``bind_host`` (the address actually bound)."""
    if settings.allowed_hosts is not None:
        return settings.allowed_hosts
    if is_wildcard_bind(bind_host):
        log.warning(
            "web app listens on host=%s but ALLOWED_HOSTS is unset: only the names %s are "
            "served; set ALLOWED_HOSTS to the names clients use",
            bind_host,
            ",".join(LOCAL_HOSTS),
        )
    return default_allowed_hosts(bind_host)


class HostGuard:
    """400 for a request or handshake whose ``Host`` is not an allowed host name."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)
        if not self.allowed:
            raise ValueError("no allowed host: every request would be refused")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        values = _headers(scope, b"host")
        reason = self._reason(values)
        if reason is None:
            await self.app(scope, receive, send)
            return
        log.warning(
            "refused %s host=%r path=%r client=%s reason=%s allowed=%s",
            scope["type"],
            values[0] if values else None,
            scope["path"],
            _client(scope),
            reason,
            ",".join(self.allowed),
        )
        await _refuse(scope, receive, send, 400, f"Host header {reason} (see ALLOWED_HOSTS)")

    def _reason(self, values: list[str]) -> str | None:
        if len(values) != 1:
            return "missing" if not values else "sent more than once"
        try:
            host, _ = parse_host(values[0])
        except ValueError:
            return "malformed"
        return None if host_allowed(host, self.allowed) else f"{host!r} is not allowed"


class OriginGuard:
    """403 for a handshake or a write sent by a page of another origin."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed: frozenset[Origin] = frozenset(parse_origin(o) for o in allowed_origins)

    def accepts(self, origin: str, host: str) -> bool:
        """Whether a page of ``origin`` may talk to the server that ``host`` names."""
        try:
            parsed = parse_origin(origin)
        except ValueError:
            return False  # "null" (sandboxed pages, file://) or junk: never our own
        return parsed in self.allowed or same_origin(parsed, host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "websocket" or (
            scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        )
        origins = _headers(scope, b"origin") if checked else []
        if not origins:
            await self.app(scope, receive, send)
            return
        hosts = _headers(scope, b"host")
        host = hosts[0] if hosts else ""
        if len(origins) == 1 and self.accepts(origins[0], host):
            await self.app(scope, receive, send)
            return
        what = "WebSocket" if scope["type"] == "websocket" else scope["method"]
        log.warning(
            "refused %s origin=%r host=%r path=%r client=%s reason=foreign origin",
            what,
            origins[0],
            host,
            scope["path"],
            _client(scope),
        )
        detail = (
            f"Origin {origins[0]!r} may not use this server: only its own pages "
            "and ALLOWED_ORIGINS may (clients that are not browsers send no Origin)"
        )
        await _refuse(scope, receive, send, 403, detail)


class JsonOnly:
    """415 for a request body that is not sent as JSON, before a byte of it is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        types = _headers(scope, b"content-type")
        if types and all(is_json_media_type(t) for t in types):
            await self.app(scope, receive, send)
            return
        given = types[0] if types else None
        log.info(
            "refused %s path=%r content_type=%r client=%s reason=body not JSON",
            scope["method"],
            scope["path"],
            given,
            _client(scope),
        )
        got = f"not {given!r}" if given is not None else "and it is missing"
        detail = f"Content-Type must be {EXPECTED_TYPE} (or application/*+json), {got}"
        await _refuse(scope, receive, send, 415, detail)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def guard_refusals(unsafe_operations: Iterable[str]) -> list[Refusal]:
    """The 400, 403 and 415 of the guards, for the spec: 400 everywhere, 403 on the
    operations named (by ``operationId``) that change something, 415 where there is a
    body."""
    writes = frozenset(unsafe_operations)

    def is_write(path: str, operation: Mapping[str, Any]) -> bool:
        return operation.get("operationId") in writes

    return [
        Refusal(400, "The Host header is not an allowed host name", applies=lambda p, o: True),
        Refusal(403, "Sent by a web page of another origin (Origin header)", applies=is_write),
        Refusal(
            415,
            f"The body is not sent as {EXPECTED_TYPE}",
            applies=lambda path, operation: "requestBody" in operation,
        ),
    ]
