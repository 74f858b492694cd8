"""``/recorder/schedules``: recorder commands sent on a cron expression or an interval.

Schedule changes are announced as ``recorder.schedule.created`` / ``.updated`` /
``.deleted``; every scheduler process picks them up from the event.  The routes come
before those of :mod:`web.recorder` (``/recorder/schedules/...`` is not a task named
``schedules``).
"""

from __future__ import annotations

import logging

from pydantic import Field, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from jobs.events import SCHEDULE_CREATED, SCHEDULE_DELETED, SCHEDULE_UPDATED
from jobs.recorder.wire import TASK_ID_MAX
from storage import recorder_repo
from storage.db import session_factory
from storage.recorder_models import RecorderSchedule
from storage.types import utcnow
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, QueryModel, Reply, respond
from web.errors import ApiError, ErrorBody, RequestInvalid
from web.recorder_schemas import (
    RecorderScheduleCreate,
    RecorderScheduleRead,
    RecorderScheduleUpdate,
)
from web.services import Services, services_of

log = logging.getLogger(__name__)


class ScheduleQuery(QueryModel):
    task_id: str | None = Field(None, max_length=TASK_ID_MAX, description="only this task")
    is_active: bool | None = Field(None, description="only active (true) or inactive (false)")


async def schedule_or_404(session: AsyncSession, schedule_id: int) -> RecorderSchedule:
    row = await recorder_repo.get_schedule(session, schedule_id)
    if row is None:
        raise ApiError(404, f"recorder schedule {schedule_id} not found")
    return row


async def announce(services: Services, kind: str, schedule: RecorderScheduleRead) -> None:
    await services.events.publish(kind, schedule.model_dump(mode="json"))


async def list_schedules(call: Call[NoBody, ScheduleQuery]) -> Response:
    """Recorder schedules ordered by id, with when each fires next."""
    now = utcnow()
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await recorder_repo.list_schedules(
            session, is_active=call.query.is_active, task_id=call.query.task_id
        )
    return respond([RecorderScheduleRead.of(r, now) for r in rows])


async def create_schedule(call: Call[RecorderScheduleCreate, NoQuery]) -> Response:
    """A command sent on a cron expression (UTC) or every ``interval_seconds``.

    Example: ``{"task_id": "cam1", "cmd": "start", "cron": "0 8 * * 1-5"}`` starts
    recording at 08:00 UTC Monday to Friday."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await recorder_repo.create_schedule(session, **call.body.model_dump())
        schedule = RecorderScheduleRead.of(row, utcnow())
    log.info(
        "recorder schedule created id=%d task_id=%s cmd=%s",
        schedule.id,
        schedule.task_id,
        schedule.cmd,
    )
    await announce(services, SCHEDULE_CREATED, schedule)
    return respond(schedule, 201, headers={"Location": f"/recorder/schedules/{schedule.id}"})


async def get_schedule(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        row = await schedule_or_404(session, call.path["schedule_id"])
    return respond(RecorderScheduleRead.of(row, utcnow()))


async def update_schedule(call: Call[RecorderScheduleUpdate, NoQuery]) -> Response:
    """Change the fields sent; the result must still be a valid schedule."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await schedule_or_404(session, call.path["schedule_id"])
        current = RecorderScheduleRead.model_validate(row).model_dump()
        try:
            valid = RecorderScheduleCreate.model_validate(call.body.merged(current))
        except ValidationError as exc:
            raise RequestInvalid.from_validation(exc, "body") from None
        changes = {k: v for k, v in valid.model_dump().items() if current[k] != v}
        if changes:
            row = await recorder_repo.update_schedule(session, row, **changes)
        schedule = RecorderScheduleRead.of(row, utcnow())
    if changes:
        log.info(
            "recorder schedule updated id=%d fields=%s", schedule.id, ",".join(sorted(changes))
        )
        await announce(services, SCHEDULE_UPDATED, schedule)
    return respond(schedule)


async def delete_schedule(call: Call[NoBody, NoQuery]) -> Response:
    """Delete the schedule (the commands it sent stay in the history)."""
    services = services_of(call.request)
    async with session_factory(services.engine)() as session:
        row = await schedule_or_404(session, call.path["schedule_id"])
        schedule = RecorderScheduleRead.model_validate(row)
        await recorder_repo.delete_schedule(session, row)
    log.info("recorder schedule deleted id=%d", schedule.id)
    await announce(services, SCHEDULE_DELETED, schedule)
    return respond(None, 204)


_SCHEDULES = "/recorder/schedules"
_ONE = "/recorder/schedules/{schedule_id:int}"
_SCHEDULE_TAGS = ("recorder schedules",)
NOT_FOUND = Reply("No recorder schedule has this id", ErrorBody)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        _SCHEDULES,
        list_schedules,
        query=ScheduleQuery,
        tags=_SCHEDULE_TAGS,
        summary="List recorder schedules",
        responses={200: Reply("Schedules", list[RecorderScheduleRead])},
    ),
    Endpoint(
        "POST",
        _SCHEDULES,
        create_schedule,
        body=RecorderScheduleCreate,
        tags=_SCHEDULE_TAGS,
        summary="Create a recorder schedule",
        responses={201: Reply("Created", RecorderScheduleRead)},
    ),
    Endpoint(
        "GET",
        _ONE,
        get_schedule,
        tags=_SCHEDULE_TAGS,
        summary="Get a recorder schedule",
        responses={200: Reply("The schedule", RecorderScheduleRead), 404: NOT_FOUND},
    ),
    Endpoint(
        "PATCH",
        _ONE,
        update_schedule,
        body=RecorderScheduleUpdate,
        tags=_SCHEDULE_TAGS,
        summary="Change a recorder schedule",
        responses={200: Reply("The changed schedule", RecorderScheduleRead), 404: NOT_FOUND},
    ),
    Endpoint(
        "DELETE",
        _ONE,
        delete_schedule,
        tags=_SCHEDULE_TAGS,
        summary="Delete a recorder schedule",
        responses={204: Reply("Deleted"), 404: NOT_FOUND},
    ),
]
