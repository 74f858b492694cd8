"""``/devices``: create, read, change and delete devices.

Every change is committed first, then announced (``device.created`` / ``.updated`` /
``.deleted`` with the :class:`DeviceRead` as payload) and handed to the in-process
scheduler at once; schedulers in other processes pick it up from the event.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from core.settings import Settings
from jobs.events import DEVICE_CREATED, DEVICE_DELETED, DEVICE_UPDATED
from storage import repo
from storage.db import session_factory
from storage.models import Device
from web.channels import check_alert_policy
from web.endpoints import (
    AnyEndpoint,
    Call,
    Endpoint,
    NoBody,
    NoQuery,
    QueryModel,
    Reply,
    respond,
)
from web.errors import ApiError, ErrorBody, RequestInvalid
from web.schemas import DeviceCreate, DeviceRead, DeviceUpdate
from web.services import Services, services_of

log = logging.getLogger(__name__)

NOT_FOUND = Reply("No device has this id", ErrorBody)


class DeviceQuery(QueryModel):
    is_active: bool | None = Field(None, description="only active (true) or inactive (false)")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31)


async def device_or_404(session: AsyncSession, device_id: int) -> Device:
    device = await repo.get_device(session, device_id)
    if device is None:
        raise ApiError(404, f"device {device_id} not found")
    return device


def check_timeout(services: Services, timeout: float | None) -> None:
    """The settings' cap is not in the static schema: check it here (422, named field)."""
    cap = services.settings.probe_max_timeout_seconds
    if timeout is not None and timeout > cap:
        raise RequestInvalid.field(
            ["body", "timeout_seconds"],
            f"must be at most PROBE_MAX_TIMEOUT_SECONDS={cap}",
            "less_than_equal",
        )


def describe_limits(spec: dict[str, Any], settings: Settings) -> None:
    """Write this deployment's PROBE_MAX_TIMEOUT_SECONDS into the spec's device schemas
    (the models carry only the static MAX_TIMEOUT_SECONDS), so clients see the bound
    :func:`check_timeout` enforces."""
    for model in ("DeviceCreate", "DeviceUpdate"):
        prop = spec["components"]["schemas"][model]["properties"]["timeout_seconds"]
        prop["maximum"] = min(prop["maximum"], settings.probe_max_timeout_seconds)


async def announce(services: Services, kind: str, device: DeviceRead) -> None:
    await services.events.publish(kind, device.model_dump(mode="json"))
    if services.scheduler is not None:
        try:
            await services.scheduler.sync_device(device.id)
        except Exception as exc:  # the event and the periodic resync still reach it
            log.warning("scheduler sync failed device=%d error=%r", device.id, exc)


async def list_devices(call: Call[NoBody, DeviceQuery]) -> Response:
    """Devices ordered by id; ``limit``/``offset`` page through them."""
    q = call.query
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await repo.list_devices(
            session, is_active=q.is_active, limit=q.limit, offset=q.offset
        )
    return respond([DeviceRead.model_validate(row) for row in rows])


async def get_device(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        device = await device_or_404(session, call.path["device_id"])
    return respond(DeviceRead.model_validate(device))


async def create_device(call: Call[DeviceCreate, NoQuery]) -> Response:
    """A new device; an active one is probed every ``interval_seconds`` from now on."""
    services = services_of(call.request)
    check_timeout(services, call.body.timeout_seconds)
    async with session_factory(services.engine)() as session:
        await check_alert_policy(session, services.settings, call.body.model_dump())
        device = DeviceRead.model_validate(
            await repo.create_device(session, **call.body.model_dump())
        )
    log.info("device created device=%d address=%s", device.id, device.address)
    await announce(services, DEVICE_CREATED, device)
    return respond(device, 201, headers={"Location": f"/devices/{device.id}"})


async def update_device(call: Call[DeviceUpdate, NoQuery]) -> Response:
    """Change the fields sent; an empty change answers the device as it is."""
    services = services_of(call.request)
    changes = call.body.changes()
    check_timeout(services, changes.get("timeout_seconds"))
    async with session_factory(services.engine)() as session:
        row = await device_or_404(session, call.path["device_id"])
        if not changes:
            return respond(DeviceRead.model_validate(row))
        await check_alert_policy(session, services.settings, changes)
        device = DeviceRead.model_validate(await repo.update_device(session, row, **changes))
    log.info("device updated device=%d fields=%s", device.id, ",".join(sorted(changes)))
    await announce(services, DEVICE_UPDATED, device)
    return respond(device)


async def delete_device(call: Call[NoBody, NoQuery]) -> Response:
    """Delete the device and its check history."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await device_or_404(session, call.path["device_id"])
        device = DeviceRead.model_validate(row)
        await repo.delete_device(session, row)
    log.info("device deleted device=%d", device.id)
    await announce(services, DEVICE_DELETED, device)
    return respond(None, 204)


_ONE = "/devices/{device_id:int}"
_TAGS = ("devices",)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        "/devices",
        list_devices,
        query=DeviceQuery,
        tags=_TAGS,
        summary="List devices",
        responses={200: Reply("Devices", list[DeviceRead])},
    ),
    Endpoint(
        "POST",
        "/devices",
        create_device,
        body=DeviceCreate,
        tags=_TAGS,
        summary="Create a device",
        responses={201: Reply("Created", DeviceRead)},
    ),
    Endpoint(
        "GET",
        _ONE,
        get_device,
        tags=_TAGS,
        summary="Get a device",
        responses={200: Reply("The device", DeviceRead), 404: NOT_FOUND},
    ),
    Endpoint(
        "PATCH",
        _ONE,
        update_device,
        body=DeviceUpdate,
        tags=_TAGS,
        summary="Change a device",
        responses={200: Reply("The changed device", DeviceRead), 404: NOT_FOUND},
    ),
    Endpoint(
        "DELETE",
        _ONE,
        delete_device,
        tags=_TAGS,
        summary="Delete a device",
        responses={204: Reply("Deleted"), 404: NOT_FOUND},
    ),
]
