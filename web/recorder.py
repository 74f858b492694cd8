"""``/recorder``: commands to the recorder through the queue, their history, schedules.

``POST /recorder/{task_id}/start``, ``POST .../stop`` and ``GET .../status`` enqueue one
``fleetprobe.recorder`` task and wait (at most ``NATS_TIMEOUT`` + 5 s) for its stored
result.  The answer says what came of it:

- 200: the recorder replied (``msg_status`` ``success`` or ``error`` — a refusal such as a
  second ``start`` is a valid reply);
- 502: the recorder replied with something that is not a valid reply;
- 503: no recorder listens on ``NATS_SUBJECT`` ("recorder not running", known at once),
  or NATS could not be reached; also when the queue refused the job;
- 504: the recorder did not answer within ``NATS_TIMEOUT``, or no result was stored in
  time (the command may still run; it will show in the history).

Errors carry ``{"detail": ..., "result": <the stored CommandResult or null>}``.
Schedule changes are announced as ``recorder.schedule.created`` / ``.updated`` /
``.deleted``; every scheduler process picks them up from the event.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from jobs.events import RECORDER_COMMAND
from jobs.recorder.job import one_off_job
from jobs.recorder.kick import kick_recorder
from jobs.recorder.result import CommandResultRead
from jobs.recorder.scheduler import SCHEDULE_CREATED, SCHEDULE_DELETED, SCHEDULE_UPDATED
from jobs.recorder.wire import TASK_ID_MAX, CommandName
from storage import recorder_repo
from storage.db import session_factory
from storage.recorder_models import RecorderSchedule
from storage.types import utcnow
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
from web.recorder_schemas import (
    RecorderScheduleCreate,
    RecorderScheduleRead,
    RecorderScheduleUpdate,
    StartBody,
    StopBody,
    TaskId,
    wire_payload,
)
from web.services import Services, services_of
from web.waiting import wait_for_stored

log = logging.getLogger(__name__)

# Queue and worker overhead on top of the recorder's own NATS_TIMEOUT.
WAIT_MARGIN_SECONDS = 5.0

STATUS_OF_ERROR = {
    "timeout": 504,
    "no_responder": 503,
    "connection": 503,
    "invalid_reply": 502,
}


class RecorderFailure(BaseModel):
    """No valid reply: why, and the stored command result when there is one."""

    detail: str
    result: CommandResultRead | None = None


class HistoryQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)


class ScheduleQuery(QueryModel):
    task_id: str | None = Field(None, max_length=TASK_ID_MAX, description="only this task")
    is_active: bool | None = Field(None, description="only active (true) or inactive (false)")


# -- commands --------------------------------------------------------------------------


async def wait_for_command(
    services: Services, run_key: str, timeout: float
) -> CommandResultRead | None:
    """The stored result of ``run_key``, or None after ``timeout``."""

    async def read(session: AsyncSession, keys: list[str]) -> dict[str, CommandResultRead]:
        row = await recorder_repo.get_command(session, keys[0])
        return {} if row is None else {row.run_key: CommandResultRead.model_validate(row)}

    found = await wait_for_stored(services, RECORDER_COMMAND, [run_key], read, timeout)
    return found.get(run_key)


def failure(status: int, detail: str, result: CommandResultRead | None = None) -> Response:
    return respond(RecorderFailure(detail=detail, result=result), status)


async def run_command(
    call: Call[Any, Any], cmd: CommandName, payload: BaseModel | None
) -> Response:
    services = services_of(call.request)
    task_id: str = call.path["task_id"]
    job = one_off_job(task_id, cmd, wire_payload(cmd, payload))
    try:
        await kick_recorder(services.broker, job)
    except Exception as exc:
        log.warning("recorder kick failed task_id=%s cmd=%s error=%r", task_id, cmd, exc)
        return failure(503, f"the job queue did not accept the command: {exc}")
    timeout = services.settings.nats_timeout + WAIT_MARGIN_SECONDS
    result = await wait_for_command(services, job.run_key, timeout)
    if result is None:
        log.warning("recorder result late task_id=%s cmd=%s run_key=%s", task_id, cmd, job.run_key)
        return failure(
            504,
            f"no result within {timeout:g}s (run_key={job.run_key}); the command may still "
            f"run: see GET /recorder/{task_id}/commands",
        )
    if result.error_kind is not None:
        status = STATUS_OF_ERROR.get(result.error_kind, 502)
        return failure(status, f"{result.error_kind}: {result.error}", result)
    return respond(result)


async def start(call: Call[StartBody, NoQuery]) -> Response:
    """Start recording; fields left out take the recorder's defaults."""
    return await run_command(call, "start", call.body)


async def stop(call: Call[StopBody, NoQuery]) -> Response:
    """Stop recording."""
    return await run_command(call, "stop", call.body)


async def status(call: Call[NoBody, NoQuery]) -> Response:
    """Ask the recorder what it is doing (``payload: null``)."""
    return await run_command(call, "status", None)


async def history(call: Call[NoBody, HistoryQuery]) -> Response:
    """Commands sent for this task, newest first."""
    task_id: str = call.path["task_id"]
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await recorder_repo.list_commands(session, task_id, call.query.limit)
    return respond([CommandResultRead.model_validate(r) for r in rows])


# -- schedules -------------------------------------------------------------------------


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


_TASK = "/recorder/{task_id}"
_TASK_PARAMS = {"task_id": TaskId}
_SCHEDULES = "/recorder/schedules"
_ONE = "/recorder/schedules/{schedule_id:int}"
_TAGS = ("recorder",)
_SCHEDULE_TAGS = ("recorder schedules",)
NOT_FOUND = Reply("No recorder schedule has this id", ErrorBody)
COMMAND_REPLIES = {
    200: Reply("The recorder replied (msg_status success or error)", CommandResultRead),
    502: Reply("The recorder's reply was not valid", RecorderFailure),
    503: Reply("No recorder listens (not running), or NATS / the queue is down", RecorderFailure),
    504: Reply(
        "The recorder did not answer in time, or no result was stored in time", RecorderFailure
    ),
}

# Schedules first: "/recorder/schedules/..." must not be read as a task named "schedules".
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
    Endpoint(
        "POST",
        f"{_TASK}/start",
        start,
        body=StartBody,
        tags=_TAGS,
        summary="Start recording",
        operation_id="recorder_start",
        path_params=_TASK_PARAMS,
        responses=COMMAND_REPLIES,
    ),
    Endpoint(
        "POST",
        f"{_TASK}/stop",
        stop,
        body=StopBody,
        tags=_TAGS,
        summary="Stop recording",
        operation_id="recorder_stop",
        path_params=_TASK_PARAMS,
        responses=COMMAND_REPLIES,
    ),
    Endpoint(
        "GET",
        f"{_TASK}/status",
        status,
        tags=_TAGS,
        summary="Recorder status",
        operation_id="recorder_status",
        path_params=_TASK_PARAMS,
        responses=COMMAND_REPLIES,
    ),
    Endpoint(
        "GET",
        f"{_TASK}/commands",
        history,
        query=HistoryQuery,
        tags=_TAGS,
        summary="Command history",
        operation_id="recorder_commands",
        path_params=_TASK_PARAMS,
        responses={200: Reply("Commands, newest first", list[CommandResultRead])},
    ),
]
