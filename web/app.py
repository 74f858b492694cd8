"""``create_app(services)``: the Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from web.health import health
from web.services import Services


def create_app(services: Services) -> Starlette:
    app = Starlette(routes=[Route("/health", health, methods=["GET"])])
    app.state.services = services
    return app
