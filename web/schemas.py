"""What the REST API reads and writes: pydantic models, never the tables.

SQLModel's split: ``DeviceBase`` holds the fields a client may set, ``DeviceCreate`` /
``DeviceUpdate`` validate input (unknown fields refused), ``DeviceRead`` is what goes
out.  Bounds come from ``core.settings`` so the API and the queue agree on them.
Input is strict JSON (``"true"`` is not a boolean).  Example::

    >>> DeviceCreate.model_validate_json(
    ...     '{"name": " edge-1 ", "address": "https://edge-1.example"}').name
    'edge-1'
    >>> DeviceCreate.model_validate_json('{"name": "x", "address": "ftp://x"}')
    Traceback (most recent call last):
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DeviceCreate
    address
    ...
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    MISSING,
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)

from core.settings import (
    MAX_INTERVAL_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_INTERVAL_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from storage.types import MAX_ID

_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _http_url(value: str) -> str:
    """Validate as an http(s) URL but store what the client sent (no added slash)."""
    _HTTP_URL.validate_python(value)
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Address = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=2048, pattern=r"^[hH][tT][tT][pP][sS]?://\S+$"
    ),
    AfterValidator(_http_url),
    Field(
        description="http:// or https:// URL probed with a GET",
        examples=["https://example.com/health"],
    ),
]
Interval = Annotated[
    int,
    Field(
        ge=MIN_INTERVAL_SECONDS,
        le=MAX_INTERVAL_SECONDS,
        description="seconds between probes; null: the default",
    ),
]
Timeout = Annotated[
    float,
    Field(
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="probe timeout in seconds; null: the default "
        "(at most PROBE_MAX_TIMEOUT_SECONDS)",
    ),
]

_INPUT = ConfigDict(extra="forbid", strict=True)


def _in_utc(value: datetime) -> datetime:
    """Stored and compared in UTC: a time that has no UTC value (year 9999 at -23:59) is
    refused here, not a 500 at the database."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range once converted to UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class DeviceBase(BaseModel):
    model_config = _INPUT

    name: Name
    address: Address
    is_active: bool = True
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None


class DeviceCreate(DeviceBase):
    """A new device."""


class DeviceUpdate(BaseModel):
    """A partial change: only the fields sent are changed; ``interval_seconds`` or
    ``timeout_seconds`` set to null go back to the defaults."""

    model_config = _INPUT

    # Absent (MISSING) means "unchanged"; null is refused for these (NOT NULL columns).
    name: Name | MISSING = MISSING
    address: Address | MISSING = MISSING
    is_active: bool | MISSING = MISSING
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class DeviceRead(BaseModel):
    """A device as the API shows it (the seed's fields plus the probe settings)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    address: str
    is_active: bool
    interval_seconds: int | None
    timeout_seconds: float | None
    created_at: datetime
    updated_at: datetime


class CheckCreate(BaseModel):
    """A result recorded by hand (``POST /devices/{id}/checks``)."""

    model_config = _INPUT

    status_up: bool
    latency_ms: float | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    checked_at: UtcTime | None = Field(
        default=None, description="when the check ran (ISO 8601 with a zone); default: now"
    )
    status_code: int | None = Field(default=None, ge=100, le=599)
    error: str | None = Field(default=None, max_length=500)


class CheckRead(BaseModel):
    """One stored check (the seed's fields plus what the probe saw)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: int
    status_up: bool
    latency_ms: float | None
    checked_at: datetime
    status_code: int | None
    error_kind: str | None
    error: str | None
    source: str
    run_key: str
    slot_at: datetime | None


class ProbeRequest(BaseModel):
    """``POST /jobs/probe``: which devices to probe now; empty or absent: every active."""

    model_config = _INPUT

    device_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000
    )


class EnqueuedJob(BaseModel):
    device_id: int
    task_id: str = Field(description="the taskiq task id")
    run_key: str = Field(description="names the stored result (CheckRead.run_key)")


class ProbeJobs(BaseModel):
    """What ``POST /jobs/probe`` enqueued; with ``wait=true``, what they stored."""

    jobs: list[EnqueuedJob]
    complete: bool = Field(description="every job's result is stored")
    results: list[CheckRead] | None = Field(
        default=None, description="stored results (only with wait=true)"
    )


class CycleSummary(BaseModel):
    """One monitoring cycle over the active devices."""

    cycle_id: str
    devices_checked: int = Field(description="devices whose result was stored in time")
    devices_total: int
    up: int
    down: int
    missing: list[int] = Field(description="devices whose result did not arrive in time")
    started_at: datetime
    finished_at: datetime


class BackgroundStatus(BaseModel):
    """``POST /tasks/run/background``."""

    running: bool
    already_running: bool
    period_seconds: int


class DependencyHealth(BaseModel):
    """Whether one thing the service depends on (the database, NATS) answers."""

    ok: bool
    error: str | None


class HealthReport(BaseModel):
    """``GET /health``."""

    status: Literal["ok", "degraded"]
    database: DependencyHealth
    nats: DependencyHealth
