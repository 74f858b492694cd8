"""The message of one recorder task (:class:`RecorderJob`), and its builders: a command
sent from the API (a fresh run key) or one schedule slot (the same run key in every
scheduler process)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.recorder.slots import slot_key
from jobs.recorder.wire import TASK_ID_MAX, CommandName

CommandSource = Literal["api", "schedule", "manual"]


class RecorderJob(BaseModel):
    """The message of one recorder task: everything needed to send the command."""

    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(min_length=1, max_length=TASK_ID_MAX)
    cmd: CommandName
    payload: dict[str, Any] | None = None
    run_key: str = Field(min_length=1, max_length=200)
    source: CommandSource = "api"
    schedule_id: int | None = None
    slot_at: datetime | None = None


def one_off_job(
    task_id: str, cmd: CommandName, payload: dict[str, Any] | None, source: CommandSource = "api"
) -> RecorderJob:
    """A command not tied to a schedule: a fresh run key each time."""
    return RecorderJob(
        task_id=task_id,
        cmd=cmd,
        payload=payload,
        run_key=f"recorder:{source}:{uuid.uuid4().hex}",
        source=source,
    )


def scheduled_job(
    schedule_id: int, task_id: str, cmd: CommandName, payload: dict[str, Any] | None, slot: datetime
) -> RecorderJob:
    """The command of one schedule slot: the same run key in every scheduler process."""
    return RecorderJob(
        task_id=task_id,
        cmd=cmd,
        payload=payload,
        run_key=slot_key(schedule_id, slot),
        source="schedule",
        schedule_id=schedule_id,
        slot_at=slot,
    )
