"""The public, read-only face: ``GET /status-page`` and the badges
(``/badges/{id}/status.svg|json``, ``/badges/{id}/uptime.svg|json?window=30d``).

No token is needed (``web/auth.py`` lets these paths through) and nothing here writes.
Only devices whose ``public`` flag is set appear; every other id answers 404, the same
404 as an id that does not exist, so the badges tell nobody which private ids exist.
What is shown is the name, the state, since when, the uptime and the open incidents
(``storage/public.py``); the address and the last check's latency, status code and error
text only of a device whose ``public_details`` is set (``PublicDevice.details``, which
``storage/public.py`` fills for those alone).  The badges never show them.  The uptime is
the figure ``GET /devices/{id}/uptime`` gives for the same window (time, from state
changes, with the active maintenance windows' time left out).  The page is rendered on
the server (Jinja2, autoescaped), so it needs no JavaScript.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from jobs.scheduling.calendar import load_windows
from jobs.scheduling.windows import MaintenancePeriods
from storage.public import PublicDevice, public_device, public_devices, uptime_percent
from storage.types import utcnow
from storage.uptime_maths import Window, parse_window
from web.badges import STATE_COLORS, badge_svg, format_uptime, shields, uptime_color
from web.errors import ApiError, RequestInvalid
from web.services import services_of

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "status_page_routes"]

PUBLIC_PATHS = frozenset({"/status-page"})
PUBLIC_PREFIXES = ("/badges/",)
DEFAULT_WINDOW = "30d"
PAGE_WINDOW = parse_window(DEFAULT_WINDOW)
# Badges are fetched by README renderers and shields.io: a minute of caching is fine.
_BADGE_HEADERS = {
    "Cache-Control": "max-age=60",
    # An SVG opened on its own is a document: it may run nothing and load nothing.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


async def _uptimes(
    request: Request, devices: list[PublicDevice], window: Window, now: datetime
) -> dict[int, float | None]:
    """The devices' uptime over ``window``: what ``GET /devices/{id}/uptime`` computes."""
    engine = services_of(request).engine
    periods = MaintenancePeriods(await load_windows(engine), now - window.length, now)
    async with engine.connect() as conn:
        return await uptime_percent(conn, devices, window, now, periods.of)


async def status_page(request: Request) -> Response:
    engine = services_of(request).engine
    now = utcnow()
    async with engine.connect() as conn:
        devices = await public_devices(conn)
    uptimes = await _uptimes(request, devices, PAGE_WINDOW, now)
    rows = [
        {
            "name": d.name,
            "state": d.state,
            "since": d.since,
            "uptime": format_uptime(uptimes.get(d.id)),
            "details": d.details,
            "latency": None if d.details is None else _latency(d.details.latency_ms),
        }
        for d in devices
    ]
    incidents = [r for r in rows if r["state"] == "down"]
    states = {d.state for d in devices}
    overall = (
        "No public devices"
        if not devices
        else "Some systems are down"
        if "down" in states
        else "Some systems are degraded"
        if "degraded" in states
        else "All systems operational"
    )
    html = _templates.get_template("status_page.html").render(
        devices=rows, incidents=incidents, overall=overall, now=now
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


def _latency(ms: float | None) -> str | None:
    if ms is None:
        return None
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


async def _device_or_404(request: Request) -> PublicDevice:
    device_id: int = request.path_params["device_id"]
    async with services_of(request).engine.connect() as conn:
        device = await public_device(conn, device_id)
    if device is None:
        # Private and missing alike: a badge reveals nothing about devices not shown.
        raise ApiError(404, f"no public device {device_id}")
    return device


def _format(request: Request) -> str:
    return "json" if request.url.path.endswith(".json") else "svg"


def _badge(fmt: str, label: str, message: str, color: str) -> Response:
    if fmt == "json":
        return JSONResponse(shields(label, message, color), headers=_BADGE_HEADERS)
    return Response(
        badge_svg(label, message, color), media_type="image/svg+xml", headers=_BADGE_HEADERS
    )


async def status_badge(request: Request) -> Response:
    device = await _device_or_404(request)
    return _badge(
        _format(request),
        "status",
        device.state,
        STATE_COLORS.get(device.state, "lightgrey"),
    )


async def uptime_badge(request: Request) -> Response:
    text = request.query_params.get("window", DEFAULT_WINDOW)
    try:
        window = parse_window(text)
    except ValueError as exc:
        raise RequestInvalid.field(["query", "window"], str(exc)) from None
    device = await _device_or_404(request)
    percent = (await _uptimes(request, [device], window, utcnow()))[device.id]
    return _badge(
        _format(request),
        f"uptime {window.label}",
        format_uptime(percent),
        uptime_color(percent),
    )


def status_page_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/status-page", status_page, methods=["GET"], include_in_schema=False)
    ]
    for fmt in ("svg", "json"):
        for name, handler in (("status", status_badge), ("uptime", uptime_badge)):
            routes.append(
                Route(
                    f"/badges/{{device_id:int}}/{name}.{fmt}",
                    handler,
                    methods=["GET"],
                    include_in_schema=False,
                )
            )
    return routes
