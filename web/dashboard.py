"""The dashboard at ``/``: one HTML page and its ES modules and styles, plain files under
``web/dashboard/`` served as they are (no build step, no CDN).

The page and its assets hold no data and need no token (``web/auth.py``): the browser
cannot send a header when it opens a page, and the page itself asks for the token the
first time the API answers 401, keeps it in ``sessionStorage`` and sends it as
``Authorization: Bearer`` (never a cookie; ``?token=`` on the WebSocket only).  Every
request the page makes then goes through the same guards as any other client.  The page
has no inline script or style, so the Content-Security-Policy of ``web/headers.py``
applies to it unchanged.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "DASHBOARD_DIR", "dashboard_routes"]

DASHBOARD_DIR = Path(__file__).parent / "dashboard"
ASSETS = "/dashboard/assets"


async def index(request: Request) -> Response:
    # no-cache: a new version of the page is picked up on the next load.
    return FileResponse(
        DASHBOARD_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def dashboard_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"], include_in_schema=False),
        Mount(ASSETS, StaticFiles(directory=DASHBOARD_DIR), name="dashboard-assets"),
    ]
