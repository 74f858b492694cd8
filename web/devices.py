"""``/devices``: create, read, change and delete devices.

Every change is committed first, then announced (``device.created`` / ``.updated`` /
``.deleted`` with the :class:`DeviceRead` as payload) and handed to the in-process
scheduler at once; schedulers in other processes pick it up from the event.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from core.secrets import keep_masked
from core.settings import Settings
from jobs.events import DEVICE_CREATED, DEVICE_DELETED, DEVICE_UPDATED
from jobs.probe.conditions import foreign_placeholders
from jobs.probe.kinds.address import parse_address, scheme_of
from jobs.probe.syntax import parse_condition
from storage import repo
from storage.db import session_factory
from storage.models import Device
from storage.types import utcnow
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
from web.errors import ApiError, ErrorBody, Issue, RequestInvalid
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
    """The one upper bound of ``timeout_seconds``, this deployment's
    PROBE_MAX_TIMEOUT_SECONDS (not in the static schema): 422, named field."""
    cap = services.settings.probe_max_timeout_seconds
    if timeout is not None and timeout > cap:
        raise RequestInvalid.field(
            ["body", "timeout_seconds"],
            f"must be at most {cap:g} (PROBE_MAX_TIMEOUT_SECONDS)",
            "less_than_equal",
        )


def check_device(settings: Settings, device: dict[str, Any], sent: Collection[str]) -> None:
    """The rules across fields and settings, on the device as it would be stored
    (``device``: every field; ``sent``: the fields the request set).  Raises one 422
    naming each field at fault: a field the request did not send is blamed on the one
    it did (a PATCH of ``address`` re-checks the stored conditions for the new kind)."""
    issues: list[Issue] = []
    scheme = scheme_of(parse_address(device["address"]))
    for field in ("conditions", "degraded_when"):
        for index, text in enumerate(device.get(field) or ()):
            foreign = foreign_placeholders(scheme, parse_condition(text))
            if not foreign:
                continue
            names = ", ".join(f"[{name}]" for name in foreign)
            if field in sent:
                loc: list[str | int] = ["body", field, index]
                msg = f"{names} is not filled by a {scheme}:// check (docs/check-kinds.md)"
            else:
                loc = ["body", "address"]
                msg = f"a {scheme}:// check does not fill {names}, read by {field}[{index}]"
            issues.append(Issue(loc=loc, msg=msg, type="value_error"))
    retry = device.get("retry_interval_seconds")
    interval = device.get("interval_seconds") or settings.monitor_period_seconds
    if retry is not None and retry > interval:
        field = "retry_interval_seconds" if "retry_interval_seconds" in sent else "interval_seconds"
        issues.append(
            Issue(
                loc=["body", field],
                msg=f"retry_interval_seconds ({retry}) must be at most the interval ({interval})",
                type="less_than_equal",
            )
        )
    reminder = device.get("reminder_every_minutes") or 0
    floor = settings.reminder_min_minutes
    if 0 < reminder < floor:
        issues.append(
            Issue(
                loc=["body", "reminder_every_minutes"],
                msg=f"must be 0 (no reminders) or at least REMINDER_MIN_MINUTES={floor}",
                type="greater_than_equal",
            )
        )
    if issues:
        raise RequestInvalid(issues)


def device_fields(device: Device) -> dict[str, Any]:
    """The settable fields of a stored device."""
    return {name: getattr(device, name) for name in DeviceCreate.model_fields}


def describe_limits(spec: dict[str, Any], settings: Settings) -> None:
    """Write this deployment's PROBE_MAX_TIMEOUT_SECONDS into the spec's device schemas
    as ``timeout_seconds``' maximum, the bound :func:`check_timeout` enforces."""
    for model in ("DeviceCreate", "DeviceUpdate"):
        prop = spec["components"]["schemas"][model]["properties"]["timeout_seconds"]
        prop["maximum"] = settings.probe_max_timeout_seconds


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
    fields = call.body.model_dump()
    check_device(services.settings, fields, fields)
    async with session_factory(services.engine)() as session:
        await check_alert_policy(session, services.settings, call.body.model_dump())
        device = DeviceRead.model_validate(
            await repo.create_device(session, **call.body.model_dump())
        )
    log.info("device created device=%d address=%s", device.id, device.address)
    # Its health row: unknown until its first results (paused when created inactive).
    await services.health.create(services.engine, device.id)
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
        if changes.get("headers") is not None:  # "***" keeps what is stored
            changes["headers"] = keep_masked(changes["headers"], row.headers)
        check_device(services.settings, device_fields(row) | changes, changes)
        was_active = row.is_active
        await check_alert_policy(session, services.settings, changes)
        device = DeviceRead.model_validate(await repo.update_device(session, row, **changes))
    log.info("device updated device=%d fields=%s", device.id, ",".join(sorted(changes)))
    if device.is_active != was_active:
        # Paused, or back to unknown, at once (the leader's sweep would see it later).
        await services.health.set_active(services.engine, device.id, device.is_active, utcnow())
    await announce(services, DEVICE_UPDATED, device)
    return respond(device)


async def delete_device(call: Call[NoBody, NoQuery]) -> Response:
    """Delete the device and all its history (checks, uptime, state changes,
    notifications); it leaves the maintenance windows that named it."""
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
