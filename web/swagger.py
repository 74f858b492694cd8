"""``/swagger``: Swagger UI from the ``swagger-ui-bundle`` wheel's own files (no CDN), so the
API explorer works on a machine without internet."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/swagger/assets"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title} - Swagger UI</title>
  <link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="{assets}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: "{spec_url}",
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      }});
    }};
  </script>
</body>
</html>
"""


def swagger_routes(title: str, spec_url: str = "/openapi.json") -> list[BaseRoute]:
    page = _PAGE.format(title=title, assets=ASSETS, spec_url=spec_url)

    async def swagger(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/swagger", swagger, methods=["GET"], include_in_schema=False),
        Mount(ASSETS, StaticFiles(directory=Path(str(swagger_ui_path))), name="swagger-assets"),
    ]
