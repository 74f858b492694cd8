"""SQLModel tables.

``Device`` and ``CheckResult`` keep the seed's fields
(``{id, name, address, is_active, created_at, updated_at}`` and
``{id, device_id, status_up, latency_ms, checked_at}``) and add what probing needs.
``CheckResult.run_key`` names the task run: storing the same run twice keeps one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlmodel import Field, SQLModel

from storage.types import JSONText, UTCDateTime, utcnow


class Device(SQLModel, table=True):
    __tablename__ = "devices"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    address: str = Field(max_length=2048)
    is_active: bool = Field(default=True, index=True)
    # None: use MONITOR_PERIOD_SECONDS / PROBE_TIMEOUT_SECONDS.
    interval_seconds: int | None = Field(default=None)
    timeout_seconds: float | None = Field(default=None)
    # Health (docs/conditions.md).  conditions / degraded_when None: the defaults of the
    # address's kind (jobs.probe.conditions.default_conditions) / never degraded.
    conditions: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    degraded_when: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    failure_threshold: int = Field(
        default=3, sa_column=Column(Integer, nullable=False, server_default=text("3"))
    )
    success_threshold: int = Field(
        default=1, sa_column=Column(Integer, nullable=False, server_default=text("1"))
    )
    # None: a failing device is probed at its interval, like a passing one.
    retry_interval_seconds: int | None = Field(default=None)
    # HTTP checks: None method is GET; headers/body sent as given.
    method: str | None = Field(default=None, max_length=10)
    headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    follow_redirects: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    verify_tls: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    # Alerts (channels, policies): None channel_ids = every default channel; None
    # notify_on = ["down", "up"]; 0 = no reminders.
    channel_ids: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    notify_on: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    reminder_every_minutes: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    snoozed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    # Shown on the public status page and its badges.
    public: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # With public: the status page also shows the address and the last check's latency,
    # status code and error text (storage/public.py decides).
    public_details: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
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
    # up | degraded | down (None on rows stored before conditions: read status_up).
    outcome: str | None = Field(default=None, max_length=10)
    # Each condition's verdict [{"condition", "success", "actual"}], and degraded_when's.
    verdicts: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    degraded_verdicts: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    certificate_expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    # https:// and tls://: the certificate's subject, RFC 4514 (revision 0006).
    certificate_subject: str | None = Field(default=None, max_length=500)
    # Stored during a maintenance window (suppress_alerts): left out of uptime.
    in_maintenance: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )


class DeviceHealth(SQLModel, table=True):
    """A device's current health, one row per device: ``health`` is the pure state
    machine's record (jobs.probe.state.Health as JSON text, encoded and decoded by
    jobs.probe.health); ``revision`` is compared and swapped on every update, so each
    change of state is decided once, at the database."""

    __tablename__ = "device_health"

    device_id: int = Field(primary_key=True)
    state: str = Field(max_length=10)
    since: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revision: int = Field(default=0)
    health: str = Field(sa_column=Column(JSONText, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # When the device's silence started counting (the later of its last result's slot
    # and ``since``, jobs.probe.state.quiet_since), in seconds since the epoch: a number
    # so the leader's sweep selects the devices it may turn ``unknown`` in SQL, on SQLite
    # and PostgreSQL alike (storage.health.sweep_candidates).  NULL: no silence changes
    # the state (paused; unknown with nothing heard since).
    stale_from_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


class StateChange(SQLModel, table=True):
    """One change of a device's state (kept when results are pruned).  ``revision`` is the
    health revision the change produced: unique per device, so it is stored once."""

    __tablename__ = "state_changes"
    __table_args__ = (
        UniqueConstraint("device_id", "revision", name="uq_state_changes_device_revision"),
        Index("ix_state_changes_device_at", "device_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int
    revision: int
    from_state: str = Field(max_length=10)
    to_state: str = Field(max_length=10)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    cause: str | None = Field(default=None, max_length=500)
    # The result that caused it (None for stale, pause and resume).
    run_key: str | None = Field(default=None, max_length=200)


# Upper bounds (ms) of the latency histogram kept per rollup row; the last is +inf.
LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class CheckRollup(SQLModel, table=True):
    """Results of one device summed per hour (``period`` "h") and per day ("d"), kept up
    to date as results are stored: uptime and latency read these, not the raw rows, and
    stay right after retention prunes them.  ``lat_le_<ms>`` counts results whose latency
    was at most that (and above the bucket before)."""

    __tablename__ = "check_rollups"

    device_id: int = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=1)
    start: datetime = Field(sa_column=Column(UTCDateTime, primary_key=True))
    checks: int = 0
    up: int = 0
    degraded: int = 0
    down: int = 0
    in_maintenance: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    lat_le_10: int = 0
    lat_le_25: int = 0
    lat_le_50: int = 0
    lat_le_100: int = 0
    lat_le_250: int = 0
    lat_le_500: int = 0
    lat_le_1000: int = 0
    lat_le_2500: int = 0
    lat_le_5000: int = 0
    lat_le_10000: int = 0
    lat_le_inf: int = 0
