"""``/devices/{id}/uptime`` (uptime, latency over trailing windows) and ``/status`` (every
device's state, newest result, 24-hour and 30-day uptime: what dashboards poll), both read
from state changes and rollups (:mod:`storage.uptime`), the time of the active maintenance
windows covering a device left out (:class:`jobs.scheduling.windows.MaintenancePeriods`)."""

from __future__ import annotations

from starlette.responses import Response

from jobs.scheduling.calendar import load_windows
from jobs.scheduling.windows import MaintenancePeriods
from storage.recent import recent_checks
from storage.types import utcnow
from storage.uptime import device_statuses, device_uptime
from storage.uptime_maths import Window, parse_windows
from web.devices import NOT_FOUND
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, Reply, respond
from web.errors import ApiError
from web.services import services_of
from web.uptime_schemas import (
    DeviceStatus,
    DeviceUptime,
    RecentCheck,
    StatusQuery,
    UptimeQuery,
    WindowUptime,
)

DAY, MONTH = parse_windows("24h,30d")


async def get_uptime(call: Call[NoBody, UptimeQuery]) -> Response:
    """Per window: uptime, degraded and down percent of the known time, unknown, paused
    and maintenance time (from state changes and maintenance windows), checks and
    p50/p95/max latency (from rollups)."""
    device_id: int = call.path["device_id"]
    windows: list[Window] = parse_windows(call.query.windows)
    now = utcnow()
    engine = services_of(call.request).engine
    since = now - max(w.length for w in windows)
    periods = MaintenancePeriods(await load_windows(engine), since, now).of(device_id)
    found = await device_uptime(engine, device_id, windows, now, periods)
    if found is None:
        raise ApiError(404, f"device {device_id} not found")
    return respond(
        DeviceUptime(
            device_id=device_id,
            at=now,
            windows=[WindowUptime.model_validate(w) for w in found],
        )
    )


async def get_status(call: Call[NoBody, StatusQuery]) -> Response:
    """Every device (by id; ``limit``/``offset`` page): state, since, newest result and
    uptime over the last 24 hours and the last 30 days (maintenance time left out); with
    ``recent=N``, its N newest results too (one more query)."""
    engine = services_of(call.request).engine
    now = utcnow()
    periods = MaintenancePeriods(await load_windows(engine), now - MONTH.length, now)
    rows = await device_statuses(
        engine,
        now,
        limit=call.query.limit,
        offset=call.query.offset,
        day=DAY,
        month=MONTH,
        maintenance=periods.of,
    )
    items = [DeviceStatus.model_validate(r) for r in rows]
    if call.query.recent and items:
        async with engine.connect() as conn:
            recent = await recent_checks(conn, [i.device_id for i in items], call.query.recent)
        items = [
            i.model_copy(update={"recent": [RecentCheck(**c) for c in recent[i.device_id]]})
            for i in items
        ]
    return respond(items)


ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        "/devices/{device_id:int}/uptime",
        get_uptime,
        query=UptimeQuery,
        tags=("uptime",),
        summary="A device's uptime and latency over trailing windows",
        responses={200: Reply("Uptime per window", DeviceUptime), 404: NOT_FOUND},
    ),
    Endpoint(
        "GET",
        "/status",
        get_status,
        query=StatusQuery,
        tags=("uptime",),
        summary="Every device's state, newest result, 24-hour and 30-day uptime",
        responses={200: Reply("One item per device, by id", list[DeviceStatus])},
    ),
]
