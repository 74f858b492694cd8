"""Recorder tables: the commands sent (one row per task run) and the schedules.

``CommandResult.run_key`` names the task run (``recorder:api:<uuid>`` for a REST call,
``recorder:<schedule id>:<slot>`` for a scheduled one): storing it twice keeps one row.
A command that got no valid reply is a row too, with ``error_kind`` and ``error`` set
(``timeout``, ``no_responder``, ``connection``, ``invalid_reply``, ``invalid_command``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class CommandResult(SQLModel, table=True):
    __tablename__ = "recorder_commands"
    __table_args__ = (Index("ix_recorder_commands_task_created", "task_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=128)
    cmd: str = Field(max_length=10)
    # The payload sent, as on the wire (null for status).
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    msg_status: str | None = Field(default=None, max_length=10)
    app_status: str | None = Field(default=None, max_length=10)
    # The reply's payload, normalised: times in UTC with Z, "" read as null.
    reply_payload: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    reason: str | None = Field(default=None, max_length=500)
    latency_ms: float | None = None
    error_kind: str | None = Field(default=None, max_length=40)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    run_key: str = Field(max_length=200, unique=True)
    source: str = Field(default="api", max_length=20)
    schedule_id: int | None = None
    slot_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # Which attempt stored the row: a redelivered task that lost the race sees another id
    # and stays quiet (only the attempt whose insert landed announces it).
    attempt_id: str = Field(max_length=32)


class RecorderSchedule(SQLModel, table=True):
    __tablename__ = "recorder_schedules"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=128)
    cmd: str = Field(max_length=10)
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Exactly one of the two: a 5-field crontab (UTC) or a period in seconds.
    cron: str | None = Field(default=None, max_length=200)
    interval_seconds: int | None = None
    is_active: bool = Field(default=True, index=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
