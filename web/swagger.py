"""``/swagger``: Swagger UI from the ``swagger-ui-bundle`` wheel's own files (no CDN), so the
API explorer works on a machine without internet.

The page has no inline script (its Content-Security-Policy allows only the server's own
files, ``web/headers.py``): the start-up code is :data:`INIT_SCRIPT`, served beside the
wheel's assets, and reads the spec's URL from the page (``data-spec-url``)."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/swagger/assets"
INIT = f"{ASSETS}/fleetprobe-init.js"

INIT_SCRIPT = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title} - Swagger UI</title>
  <link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec_url}"></div>
  <script src="{assets}/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="{assets}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script src="{init}" charset="UTF-8"></script>
</body>
</html>
"""


def swagger_routes(title: str, spec_url: str = "/openapi.json") -> list[BaseRoute]:
    page = _PAGE.format(title=title, assets=ASSETS, spec_url=html.escape(spec_url), init=INIT)

    async def swagger(request: Request) -> Response:
        return HTMLResponse(page)

    async def init(request: Request) -> Response:
        return Response(INIT_SCRIPT, media_type="text/javascript")

    return [
        Route("/swagger", swagger, methods=["GET"], include_in_schema=False),
        # Before the mount, which would otherwise look for it in the wheel's folder.
        Route(INIT, init, methods=["GET"], include_in_schema=False),
        Mount(ASSETS, StaticFiles(directory=Path(str(swagger_ui_path))), name="swagger-assets"),
    ]
