"""One recorder command and what came of it, as stored, announced (``recorder.command``)
and returned by the API: :class:`CommandResultRead`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.recorder.job import CommandSource
from jobs.recorder.wire import AppStatus, CommandName, MsgStatus, ResponsePayload


class CommandResultRead(BaseModel):
    """One command sent to the recorder and what came of it.

    A valid reply sets ``msg_status`` / ``app_status`` / ``reply_payload`` (a refusal is
    ``msg_status: "error"`` with a ``reason``); no valid reply sets ``error_kind``
    (``timeout``, ``no_responder``, ``connection``, ``invalid_reply``,
    ``invalid_command``) and ``error``.
    """

    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: str
    cmd: CommandName
    payload: dict[str, Any] | None = Field(description="the payload sent")
    msg_status: MsgStatus | None
    app_status: AppStatus | None
    reply_payload: ResponsePayload | None
    reason: str | None
    latency_ms: float | None
    error_kind: str | None
    error: str | None
    created_at: datetime
    run_key: str
    source: CommandSource
    schedule_id: int | None
    slot_at: datetime | None
