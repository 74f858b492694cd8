"""SQLModel tables.

``Device`` and ``CheckResult`` keep the seed's fields
(``{id, name, address, is_active, created_at, updated_at}`` and
``{id, device_id, status_up, latency_ms, checked_at}``) and add what probing needs.
``CheckResult.run_key`` names the task run: storing the same run twice keeps one row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class Device(SQLModel, table=True):
    __tablename__ = "devices"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    address: str = Field(max_length=2048)
    is_active: bool = Field(default=True, index=True)
    # None: use MONITOR_PERIOD_SECONDS / PROBE_TIMEOUT_SECONDS.
    interval_seconds: int | None = Field(default=None)
    timeout_seconds: float | None = Field(default=None)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class CheckResult(SQLModel, table=True):
    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_device_checked", "device_id", "checked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(index=False)
    status_up: bool
    latency_ms: float | None = None
    checked_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # The task run this row records; unique, so a redelivered task stores nothing new.
    run_key: str = Field(max_length=200, unique=True)
    # Scheduled slot this run belongs to (None for manual and queued one-off runs).
    slot_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    status_code: int | None = None
    error_kind: str | None = Field(default=None, max_length=40)
    error: str | None = Field(default=None, max_length=500)
    source: str = Field(default="schedule", max_length=20)
