"""The recorder task: send one command, store its result, announce it.

``fleetprobe.recorder`` runs on any worker.  The result is stored idempotently (keyed by
``run_key``, through the worker's batch writer); a failure to get a valid reply is data
in the row (``error_kind`` / ``error``), never an exception.  A redelivered task whose
result is already stored does not send the command again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.events import RECORDER_COMMAND, EventPublisher
from jobs.metrics import count_recorder_command
from jobs.recorder.check import INVALID_COMMAND
from jobs.recorder.client import RecorderClient
from jobs.recorder.errors import RecorderError
from jobs.recorder.job import RecorderJob
from jobs.recorder.result import CommandResultRead
from jobs.recorder.wire import Command, describe
from storage.db import session_factory
from storage.recorder_repo import get_command
from storage.types import utcnow
from storage.writer import BatchWriter

log = logging.getLogger(__name__)

ERROR_TEXT_MAX = 500


class RecorderDeps(Protocol):
    """What a recorder task needs (a :class:`jobs.worker.WorkerRuntime` has it)."""

    @property
    def engine(self) -> AsyncEngine: ...  # reads an earlier attempt's stored result
    @property
    def recorder(self) -> RecorderClient: ...
    @property
    def commands(self) -> BatchWriter: ...
    @property
    def events(self) -> EventPublisher: ...


def base_row(job: RecorderJob, attempt_id: str, created_at: datetime) -> dict[str, Any]:
    return {
        "task_id": job.task_id,
        "cmd": job.cmd,
        "payload": job.payload,
        "msg_status": None,
        "app_status": None,
        "reply_payload": None,
        "reason": None,
        "latency_ms": None,
        "error_kind": None,
        "error": None,
        "created_at": created_at,
        "run_key": job.run_key,
        "source": job.source,
        "schedule_id": job.schedule_id,
        "slot_at": job.slot_at,
        "attempt_id": attempt_id,
    }


async def send_command(
    client: RecorderClient, job: RecorderJob, row: dict[str, Any]
) -> dict[str, Any]:
    """Fill ``row`` with what sending ``job`` gave: the reply, or the failure."""
    try:
        command = Command(task_id=job.task_id, cmd=job.cmd, payload=job.payload)
    except ValidationError as exc:
        return row | {"error_kind": INVALID_COMMAND, "error": describe(exc)[:ERROR_TEXT_MAX]}
    row = row | {"payload": command.to_wire()["payload"]}
    try:
        reply = await client.send(command)
    except RecorderError as exc:
        return row | {
            "error_kind": exc.kind,
            "error": exc.message[:ERROR_TEXT_MAX],
            "latency_ms": exc.latency_ms,
        }
    response = reply.response
    return row | {
        "msg_status": response.msg_status,
        "app_status": response.app_status,
        "reply_payload": response.payload.model_dump(mode="json"),
        "reason": response.reason[:ERROR_TEXT_MAX] if response.reason else None,
        "latency_ms": reply.latency_ms,
    }


async def stored_result(deps: RecorderDeps, run_key: str) -> dict[str, Any] | None:
    async with session_factory(deps.engine)() as session:
        row = await get_command(session, run_key)
    if row is None:
        return None
    return CommandResultRead.model_validate(row).model_dump(mode="json")


async def send_recorder_command(job: RecorderJob, deps: RecorderDeps) -> dict[str, Any]:
    """Send, store (idempotently, keyed by ``run_key``), then announce; returns the stored
    result."""
    earlier = await stored_result(deps, job.run_key)
    if earlier is not None:  # redelivered after its result was stored: do not resend
        log.info("recorder task already done run_key=%s", job.run_key)
        return earlier
    attempt_id = uuid.uuid4().hex
    row = await send_command(deps.recorder, job, base_row(job, attempt_id, utcnow()))
    count_recorder_command(row["error_kind"] or row["msg_status"] or "error")
    # Returns after the batch holding this row committed: the ack follows the commit.
    row_id = await deps.commands.write(row)
    if row_id is not None:
        result = CommandResultRead.model_validate(row | {"id": row_id}).model_dump(mode="json")
        await deps.events.publish(RECORDER_COMMAND, result)
        return result
    # Another attempt of this run (a redelivery racing this one) stored its result first.
    stored = await stored_result(deps, job.run_key)
    if stored is None:  # cannot happen: the insert committed or conflicted with a row
        raise RuntimeError(f"recorder result not found after insert run_key={job.run_key}")
    log.info("recorder result stored by another attempt run_key=%s", job.run_key)
    return stored
