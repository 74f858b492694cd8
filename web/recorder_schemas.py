"""What the API and the events carry for recorder commands and schedules (never tables).

Schedules are validated by running them: the payload by the model of its command, the
cron expression by building its trigger and computing the next fire time::

    >>> RecorderScheduleCreate.model_validate_json(
    ...     '{"task_id": "cam1", "cmd": "start", "cron": "0 8 * * 1-5",'
    ...     ' "payload": {"segment_time": 600}}').payload["vid_byterate"]
    2000
    >>> RecorderScheduleCreate.model_validate_json(
    ...     '{"task_id": "cam1", "cmd": "status", "cron": "0 25 * * *"}')
    Traceback (most recent call last):
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RecorderScheduleCreate
    cron
      Value error, cron '0 25 * * *': Error validating expression '25': ...
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from core.settings import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from jobs.recorder.triggers import build_trigger, check_schedule, next_fire
from jobs.recorder.wire import (
    TASK_ID_MAX,
    CommandName,
    StartPayload,
    StopPayload,
    payload_for,
    payload_json,
)
from storage.types import utcnow

TaskId = Annotated[str, Field(min_length=1, max_length=TASK_ID_MAX, examples=["task01"])]
Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="5-field crontab, UTC; day of week 0 or 7 = Sunday",
        examples=["0 8 * * 1-5"],
    ),
]
Interval = Annotated[
    int,
    Field(ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS, description="seconds between runs"),
]

_INPUT = ConfigDict(extra="forbid", strict=True)


class StartBody(StartPayload):
    """``POST /recorder/{task_id}/start``: every field optional (the recorder's defaults)."""

    model_config = _INPUT


class StopBody(StopPayload):
    """``POST /recorder/{task_id}/stop``: ``segment_time`` (default 300.0)."""

    model_config = _INPUT


def wire_payload(cmd: CommandName, payload: Any) -> dict[str, Any] | None:
    """The payload exactly as ``cmd`` sends it (defaults filled in); ``ValueError`` says
    which field is wrong."""
    return payload_json(payload_for(cmd, payload))


class _ScheduleChecks(BaseModel):
    """Field rules shared by create and update."""

    @field_validator("payload", mode="after", check_fields=False)
    @classmethod
    def _payload_fits_cmd(cls, value: Any, info: ValidationInfo) -> Any:
        cmd = info.data.get("cmd")
        if cmd is None:  # update without cmd: checked again on the merged schedule
            return value
        return wire_payload(cmd, value)

    @field_validator("cron", mode="after", check_fields=False)
    @classmethod
    def _cron_fires(cls, value: str | None) -> str | None:
        if value is not None:
            value = " ".join(value.split())
            check_schedule(value, None, utcnow())
        return value


class RecorderScheduleCreate(_ScheduleChecks):
    """A scheduled command: exactly one of ``cron`` and ``interval_seconds``."""

    model_config = _INPUT

    task_id: TaskId
    cmd: CommandName
    payload: dict[str, Any] | None = Field(
        None, description="start/stop parameters; null: the defaults; ignored for status"
    )
    cron: Cron | None = None
    interval_seconds: Interval | None = None
    is_active: bool = True

    @model_validator(mode="after")
    def _one_trigger(self) -> RecorderScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return self


class RecorderScheduleUpdate(_ScheduleChecks):
    """A partial change.  Setting ``cron`` clears ``interval_seconds`` and the other way
    round, unless both are sent; changing ``cmd`` without a ``payload`` resets it to the
    new command's defaults."""

    model_config = _INPUT

    task_id: TaskId | SkipJsonSchema[None] = None
    cmd: CommandName | SkipJsonSchema[None] = None
    payload: dict[str, Any] | None = None
    cron: Cron | None = None
    interval_seconds: Interval | None = None
    is_active: bool | SkipJsonSchema[None] = None

    @field_validator("task_id", "cmd", "is_active", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null (leave the field out to keep it)")
        return value

    def merged(self, current: dict[str, Any]) -> dict[str, Any]:
        """``current`` with these changes applied (to validate as a create)."""
        changes = self.model_dump(exclude_unset=True)
        if "cmd" in changes and "payload" not in changes:
            changes["payload"] = None  # another command: its own defaults, not the old ones
        if "cron" in changes and changes["cron"] is not None:
            changes.setdefault("interval_seconds", None)
        if "interval_seconds" in changes and changes["interval_seconds"] is not None:
            changes.setdefault("cron", None)
        fields = RecorderScheduleCreate.model_fields
        return {k: v for k, v in {**current, **changes}.items() if k in fields}


class RecorderScheduleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: str
    cmd: CommandName
    payload: dict[str, Any] | None
    cron: str | None
    interval_seconds: int | None
    is_active: bool
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = Field(
        None, description="when it fires next (null when inactive)"
    )

    @classmethod
    def of(cls, row: Any, now: datetime) -> RecorderScheduleRead:
        read = cls.model_validate(row)
        if read.is_active:
            read.next_run_at = next_fire(build_trigger(read.cron, read.interval_seconds), now)
        return read
