"""``create_app(services)``: the Starlette application.

REST endpoints are declared in one module per concept (``ENDPOINTS`` lists of
:class:`web.endpoints.Endpoint`); :func:`api_endpoints` gathers them, and the same list
builds the routes and ``/openapi.json``.  The lifespan starts the WebSocket hub and
stops it and the cycle loop on shutdown.  In front of the routes, outermost first:
:class:`HideQueryToken` (``?token=`` out of the query string before anything answers or
logs, ``web/auth.py``); :class:`SecurityHeaders` (``web/headers.py``); the browser guards
:class:`HostGuard`, :class:`OriginGuard`, :class:`JsonOnly` (``web/guards.py``);
:class:`BearerAuth` when ``API_TOKEN`` is set (``web/auth.py``; ``/metrics`` left out of
it by ``METRICS_PUBLIC``); :class:`BodyLimit` (``web/limits.py``).  ``GET /metrics``
(``web/metrics.py``) is a plain route, outside the spec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import BaseRoute, WebSocketRoute

from jobs.events import EVENT_TYPES
from jobs.metrics import WORK, WorkAggregator
from web import (
    channels,
    checks,
    cycles,
    devices,
    maintenance,
    metrics,
    notifications,
    probe_runs,
    recorder,
    recorder_schedules,
    state_changes,
    uptime,
    validation,
)
from web.auth import UNAUTHORIZED, BearerAuth, HideQueryToken
from web.cycles import CycleRunner
from web.dashboard import dashboard_routes
from web.endpoints import (
    AnyEndpoint,
    Call,
    Endpoint,
    NoBody,
    NoQuery,
    Reply,
    build_routes,
)
from web.errors import EXCEPTION_HANDLERS
from web.guards import SAFE_METHODS, HostGuard, JsonOnly, OriginGuard, allowed_hosts, guard_refusals
from web.headers import SecurityHeaders
from web.health import health
from web.hub import Hub
from web.limits import MAX_BODY_BYTES, BodyLimit, body_limit_refusal
from web.schemas import HealthReport
from web.services import Services
from web.spec import build_spec, describe_refusal, openapi_route
from web.status_page import status_page_routes
from web.swagger import swagger_routes
from web.ws import ITEMS_PATH, items_socket, unknown_socket

TITLE = "fleetprobe"
VERSION = "0.1.0"


def description() -> str:
    """The spec's description; its list of events is :data:`jobs.events.EVENT_TYPES`, so
    a type registered there is listed here."""
    events = "\n".join(f"- `{name}`: {what}" for name, what in EVENT_TYPES.items())
    return (
        "Devices, their check history and probes run through a NATS JetStream queue. "
        "Events stream on the WebSocket `ws://<host>:<port>/ws/items` "
        "(filters: `?types=a,b` from the list below, `?device_id=N`; send `ping` for "
        "`pong`; a refused handshake gets one `error` message and a close with code "
        "1008). Timestamps are ISO 8601 UTC with `Z`, over REST and in every event.\n\n"
        f"Events:\n\n{events}"
    )


async def _health(call: Call[NoBody, NoQuery]) -> Response:
    """Whether NATS and the database answer."""
    return await health(call.request)


HEALTH: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        "/health",
        _health,
        tags=("health",),
        summary="Health",
        operation_id="health",
        responses={
            200: Reply("NATS and the database answer", HealthReport),
            503: Reply("NATS or the database does not answer", HealthReport),
        },
    ),
]


def api_endpoints() -> list[AnyEndpoint]:
    """Every REST endpoint, in the order the spec lists them."""
    return [
        *devices.ENDPOINTS,
        *validation.ENDPOINTS,
        *checks.ENDPOINTS,
        *uptime.ENDPOINTS,
        *state_changes.ENDPOINTS,
        *probe_runs.ENDPOINTS,
        *cycles.ENDPOINTS,
        *recorder_schedules.ENDPOINTS,
        *recorder.ENDPOINTS,
        *channels.ENDPOINTS,
        *notifications.ENDPOINTS,
        *maintenance.ENDPOINTS,
        *HEALTH,
    ]


def create_app(services: Services, bind_host: str | None = None) -> Starlette:
    """``bind_host``: the address the server listens on (default ``WEB_HOST``), which
    ``ALLOWED_HOSTS`` includes by default."""
    settings = services.settings
    endpoints = api_endpoints()
    spec = build_spec(endpoints, title=TITLE, version=VERSION, description=description())
    devices.describe_limits(spec, settings)
    describe_refusal(spec, body_limit_refusal(MAX_BODY_BYTES))
    writes = [e.name for e in endpoints if e.method not in SAFE_METHODS]
    for refusal in guard_refusals(writes):
        describe_refusal(spec, refusal)
    hosts = allowed_hosts(settings, settings.web_host if bind_host is None else bind_host)
    token = settings.api_token
    # Outermost first: a request a browser was made to send is refused before its token
    # is checked, and an unauthenticated one before its body is looked at; a ?token= is
    # out of the query string (and so of the access log) before any of them answers.
    middleware = [
        Middleware(HideQueryToken),
        Middleware(SecurityHeaders),
        Middleware(HostGuard, allowed=hosts),
        Middleware(OriginGuard, allowed_origins=settings.allowed_origins),
        Middleware(JsonOnly),
        Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES),
    ]
    if token is not None:
        describe_refusal(spec, UNAUTHORIZED)
        public = frozenset({metrics.METRICS_PATH}) if settings.metrics_public else frozenset()
        middleware.insert(
            -1, Middleware(BearerAuth, token=token.get_secret_value(), also_public=public)
        )
    hub = Hub(
        services.nc,
        settings.events_subject,
        services.installation_id,
        tick_seconds=settings.tick_seconds,
        client_buffer_bytes=settings.ws_client_buffer_bytes,
    )
    cycles = CycleRunner(services)
    work = WorkAggregator(WORK, interval=settings.metrics_push_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        await work.start(services.nc, settings.metrics_subject)
        try:
            yield
        finally:
            await cycles.stop()
            await work.stop()
            await hub.stop()
            await services.close_check_tools()

    routes: list[BaseRoute] = [
        *build_routes(endpoints),
        openapi_route(spec),
        *swagger_routes(TITLE),
        WebSocketRoute(ITEMS_PATH, items_socket),
        *metrics.ROUTES,
        *dashboard_routes(),
        *status_page_routes(),
        # Last: every other WebSocket path is refused with a reason (HTTP is untouched).
        WebSocketRoute("/{path:path}", unknown_socket),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.services = services
    app.state.hub = hub
    app.state.cycles = cycles
    app.state.metrics = work
    app.state.openapi = spec
    return app
