"""``/recorder/{task_id}``: commands to the recorder through the queue, their history.

``POST /recorder/{task_id}/start``, ``POST .../stop`` and ``POST .../status`` enqueue one
``fleetprobe.recorder`` task and wait (at most ``NATS_TIMEOUT`` + 5 s) for its stored
result.  ``GET .../status`` sends nothing: it answers the last status known from the
history (the newest command the recorder answered), or 404.  (Until this split the GET
sent a ``status`` command; no seed client calls this REST path — the seed's client speaks
NATS — so the GET became safe rather than keeping its side effect for a while.)  The
answer of a command says what came of it:

- 200: the recorder replied (``msg_status`` ``success`` or ``error`` — a refusal such as a
  second ``start`` is a valid reply);
- 502: the recorder replied with something that is not a valid reply;
- 503: no recorder listens on ``NATS_SUBJECT`` ("recorder not running", known at once),
  or NATS could not be reached; also when the queue refused the job;
- 504: the recorder did not answer within ``NATS_TIMEOUT``, or no result was stored in
  time (the command may still run; it will show in the history).

Errors carry ``{"detail": ..., "result": <the stored CommandResult or null>}``.
Schedules are :mod:`web.recorder_schedules`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from core.natserrors import queue_refusal
from jobs.events import RECORDER_COMMAND
from jobs.recorder.job import one_off_job
from jobs.recorder.kick import kick_recorder
from jobs.recorder.result import CommandResultRead
from jobs.recorder.wire import CommandName
from storage import recorder_repo
from storage.db import session_factory
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
from web.errors import ApiError, ErrorBody
from web.recorder_schemas import (
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
    started = time.monotonic()
    try:
        await kick_recorder(services.broker, job)
    except Exception as exc:
        detail = queue_refusal(services.settings, exc, time.monotonic() - started)
        log.warning("recorder kick failed task_id=%s cmd=%s: %s", task_id, cmd, detail)
        return failure(503, detail)
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
    """Ask the recorder what it is doing, now (sends ``status`` with ``payload: null``)."""
    return await run_command(call, "status", None)


async def last_status(call: Call[NoBody, NoQuery]) -> Response:
    """The last status known, from the history: the newest command the recorder answered
    (``start``, ``stop`` or ``status``; its ``created_at`` says when).  Sends nothing;
    ``POST`` the same path to ask the recorder now."""
    task_id: str = call.path["task_id"]
    async with session_factory(services_of(call.request).engine)() as session:
        row = await recorder_repo.last_reply(session, task_id)
    if row is None:
        raise ApiError(
            404,
            f"no status known for task {task_id}: POST /recorder/{task_id}/status asks the "
            "recorder",
        )
    return respond(CommandResultRead.model_validate(row))


async def history(call: Call[NoBody, HistoryQuery]) -> Response:
    """Commands sent for this task, newest first."""
    task_id: str = call.path["task_id"]
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await recorder_repo.list_commands(session, task_id, call.query.limit)
    return respond([CommandResultRead.model_validate(r) for r in rows])


_TASK = "/recorder/{task_id}"
_TASK_PARAMS = {"task_id": TaskId}
_TAGS = ("recorder",)
COMMAND_REPLIES = {
    200: Reply("The recorder replied (msg_status success or error)", CommandResultRead),
    502: Reply("The recorder's reply was not valid", RecorderFailure),
    503: Reply("No recorder listens (not running), or NATS / the queue is down", RecorderFailure),
    504: Reply(
        "The recorder did not answer in time, or no result was stored in time", RecorderFailure
    ),
}

ENDPOINTS: list[AnyEndpoint] = [
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
        "POST",
        f"{_TASK}/status",
        status,
        tags=_TAGS,
        summary="Ask the recorder its status",
        operation_id="recorder_status",
        path_params=_TASK_PARAMS,
        responses=COMMAND_REPLIES,
    ),
    Endpoint(
        "GET",
        f"{_TASK}/status",
        last_status,
        tags=_TAGS,
        summary="The last known recorder status (sends nothing)",
        operation_id="recorder_last_status",
        path_params=_TASK_PARAMS,
        responses={
            200: Reply("The newest command the recorder answered", CommandResultRead),
            404: Reply("No command of this task was answered yet", ErrorBody),
        },
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
