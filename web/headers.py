"""Security headers: on every response, and on HTML pages the ones a browser needs to keep
other sites' pages out (docs/security.md).

:class:`SecurityHeaders` is a pure ASGI middleware: any response whose ``Content-Type`` is
``text/html`` (``/swagger`` today, the dashboard at ``/`` next) gets :data:`PAGE_HEADERS`
unless the page set them itself, so a new page is covered without doing anything.

- ``Content-Security-Policy``: scripts, styles, images, fonts and connections only from
  the server itself, no inline script or style, no plug-ins, no ``<base>``, forms post only
  to the server, and ``frame-ancestors 'none'``: no other site may frame the page and
  trick a click on its buttons (the recorder's start/stop).  ``data:`` images are allowed
  (Swagger UI's stylesheet draws its icons with them).
- ``X-Frame-Options: DENY``: the same, for browsers that ignore ``frame-ancestors``.
- Everywhere: ``X-Content-Type-Options: nosniff`` (a JSON answer is never run as a script
  or shown as a page) and ``Referrer-Policy: no-referrer`` (no URL of ours, query string
  included, is sent to another site).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "EVERY_RESPONSE", "PAGE_HEADERS", "SecurityHeaders"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
EVERY_RESPONSE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}


class SecurityHeaders:
    """Add :data:`EVERY_RESPONSE` to every HTTP response (a refused WebSocket handshake's
    included) and :data:`PAGE_HEADERS` to HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            # A refused WebSocket handshake is answered over HTTP too (the ASGI
            # denial-response extension): "websocket.http.response.start".
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = MutableHeaders(scope=message)
                added = dict(EVERY_RESPONSE)
                if headers.get("content-type", "").lower().startswith("text/html"):
                    added.update(PAGE_HEADERS)
                for name, value in added.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
