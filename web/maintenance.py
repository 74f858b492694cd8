"""``/maintenance``: maintenance windows, and ``/devices/{id}/snooze``: one device's
alerts silenced until a time.

A window's changes reach the probe schedulers and the alerts within their refresh
(``ALERT_SWEEP_SECONDS``); the leading scheduler announces ``maintenance.started`` and
``maintenance.ended`` as windows open and close.  A snooze is a change of the device: it
is announced as ``device.updated`` (the dashboard marks the device "snoozed").
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from jobs.events import DEVICE_UPDATED
from storage.alert_models import MaintenanceWindow
from storage.db import session_factory
from storage.repo import add_row, update_row
from storage.types import utcnow
from web.alert_schemas import (
    MaintenanceCreate,
    MaintenanceRead,
    MaintenanceUpdate,
    SnoozeBody,
    SnoozeRead,
)
from web.devices import device_or_404
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, Reply, respond
from web.errors import ApiError, ErrorBody, RequestInvalid
from web.schemas import DeviceRead
from web.services import Services, services_of

log = logging.getLogger(__name__)


async def window_or_404(session: AsyncSession, window_id: int) -> MaintenanceWindow:
    row = await session.get(MaintenanceWindow, window_id)
    if row is None:
        raise ApiError(404, f"maintenance window {window_id} not found")
    return row


def _columns(body: MaintenanceCreate) -> dict[str, Any]:
    fields = body.model_dump(exclude={"duration"})
    fields["duration_seconds"] = int(body.duration.total_seconds())
    return fields


async def list_windows(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        from storage.alert_repo import list_windows as rows_of

        rows = await rows_of(session)
    now = utcnow()
    return respond([MaintenanceRead.of(r, now) for r in rows])


async def create_window(call: Call[MaintenanceCreate, NoQuery]) -> Response:
    """Example: every Sunday 02:00 Berlin time for two hours, alerts silenced:
    ``{"name": "patch", "cron": "0 2 * * 0", "duration": "PT2H", "timezone":
    "Europe/Berlin"}``."""
    async with session_factory(services_of(call.request).engine)() as session:
        row = await add_row(session, MaintenanceWindow(**_columns(call.body)))
        window = MaintenanceRead.of(row)
    log.info("maintenance window created id=%d mode=%s", window.id, window.mode)
    return respond(window, 201, headers={"Location": f"/maintenance/{window.id}"})


async def get_window(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        row = await window_or_404(session, call.path["window_id"])
    return respond(MaintenanceRead.of(row))


async def update_window(call: Call[MaintenanceUpdate, NoQuery]) -> Response:
    """Change the fields sent; the result must still be a valid window."""
    async with session_factory(services_of(call.request).engine)() as session:
        row = await window_or_404(session, call.path["window_id"])
        current = MaintenanceRead.of(row).as_input()
        try:
            valid = MaintenanceCreate.model_validate(call.body.merged(current), strict=False)
        except ValidationError as exc:
            raise RequestInvalid.from_validation(exc, "body") from None
        columns = _columns(valid)
        changes = {k: v for k, v in columns.items() if getattr(row, k) != v}
        if changes:
            row = await update_row(session, row, **changes)
        window = MaintenanceRead.of(row)
    if changes:
        log.info("maintenance window updated id=%d fields=%s", window.id, ",".join(sorted(changes)))
    return respond(window)


async def delete_window(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        row = await window_or_404(session, call.path["window_id"])
        await session.delete(row)
        await session.commit()
    log.info("maintenance window deleted id=%d", call.path["window_id"])
    return respond(None, 204)


async def _announce(services: Services, device: DeviceRead) -> None:
    await services.events.publish(DEVICE_UPDATED, device.model_dump(mode="json"))


async def snooze(call: Call[SnoozeBody, NoQuery]) -> Response:
    """Silence the device's alerts until ``until`` (state changes are still recorded;
    their notifications show as ``suppressed``)."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await device_or_404(session, call.path["device_id"])
        row = await update_row(session, row, snoozed_until=call.body.until)
        device = DeviceRead.model_validate(row)
    log.info("device snoozed device=%d until=%s", device.id, call.body.until.isoformat())
    await _announce(services, device)
    return respond(SnoozeRead(device_id=device.id, snoozed_until=device.snoozed_until))


async def unsnooze(call: Call[NoBody, NoQuery]) -> Response:
    """End the snooze now."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await device_or_404(session, call.path["device_id"])
        row = await update_row(session, row, snoozed_until=None)
        device = DeviceRead.model_validate(row)
    log.info("device snooze ended device=%d", device.id)
    await _announce(services, device)
    return respond(SnoozeRead(device_id=device.id, snoozed_until=None))


_ALL = "/maintenance"
_ONE = "/maintenance/{window_id:int}"
_TAGS = ("alerts",)
NOT_FOUND = Reply("No maintenance window has this id", ErrorBody)
NO_DEVICE = Reply("No device has this id", ErrorBody)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint("GET", _ALL, list_windows, tags=_TAGS, summary="List maintenance windows",
             responses={200: Reply("Windows", list[MaintenanceRead])}),
    Endpoint("POST", _ALL, create_window, body=MaintenanceCreate, tags=_TAGS,
             summary="Create a maintenance window",
             responses={201: Reply("Created", MaintenanceRead)}),
    Endpoint("GET", _ONE, get_window, tags=_TAGS, summary="Get a maintenance window",
             responses={200: Reply("The window", MaintenanceRead), 404: NOT_FOUND}),
    Endpoint("PATCH", _ONE, update_window, body=MaintenanceUpdate, tags=_TAGS,
             summary="Change a maintenance window",
             responses={200: Reply("The changed window", MaintenanceRead), 404: NOT_FOUND}),
    Endpoint("DELETE", _ONE, delete_window, tags=_TAGS, summary="Delete a maintenance window",
             responses={204: Reply("Deleted"), 404: NOT_FOUND}),
    Endpoint("POST", "/devices/{device_id:int}/snooze", snooze, body=SnoozeBody,
             tags=("devices",), summary="Snooze a device's alerts",
             responses={200: Reply("Snoozed", SnoozeRead), 404: NO_DEVICE}),
    Endpoint("DELETE", "/devices/{device_id:int}/snooze", unsnooze, tags=("devices",),
             summary="End a device's snooze",
             responses={200: Reply("Not snoozed", SnoozeRead), 404: NO_DEVICE}),
]  # fmt: skip
