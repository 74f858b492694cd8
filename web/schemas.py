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

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    MISSING,
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    model_validator,
)

from core.secrets import mask_values
from core.settings import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from jobs.probe.kinds.address import ADDRESS_MAX, parse_address
from jobs.probe.syntax import parse_condition
from storage.types import MAX_ID

CONDITION_MAX = 500
CONDITIONS_MAX = 20
THRESHOLD_MAX = 100
HEADERS_MAX = 30
HEADER_NAME_MAX = 100
HEADER_VALUE_MAX = 2000
REQUEST_BODY_MAX = 16 * 1024
CHANNELS_MAX = 50
REMINDER_MAX_MINUTES = 7 * 24 * 60
# RFC 9110 token; the framing headers are the client's to set.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_T = TypeVar("_T")


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _TOKEN.match(name) or len(name) > HEADER_NAME_MAX:
            raise ValueError(f"header name {name[:40]!r} is not an HTTP token (letters, digits, -)")
        if name.lower() in _FRAMING:
            raise ValueError(f"header {name} is set by the HTTP client, not by the device")
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
            raise ValueError(f"header {name}'s value must not contain control characters")
    return value


def _unique(value: Sequence[_T]) -> Sequence[_T]:
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an item")
    return value


def _address(value: str) -> str:
    """Parse the address as its check kind would; store what the client sent."""
    parse_address(value)
    return value


def _condition(value: str) -> str:
    """Parse the condition (``ConditionError`` says what broke and where)."""
    parse_condition(value)
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Any case, as URLs allow: the schemes of jobs.probe.kinds.address.SCHEMES.
_SCHEMES = (
    "[hH][tT][tT][pP][sS]?|[tT][cC][pP]|[tT][lL][sS]|[dD][nN][sS]|[rR][eE][cC][oO][rR][dD][eE][rR]"
)
Address = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=ADDRESS_MAX),
    AfterValidator(_address),
    Field(
        description="what to check; the scheme chooses the kind (docs/check-kinds.md): "
        "http(s)://host/path, tcp://host:port, tls://host:port, "
        "dns://name?type=A&server=1.1.1.1, recorder://task_id",
        examples=["https://example.com/health"],
        # For the spec only: _address (the kinds' own parser) checks it, with a message
        # that names the schemes, never the raw pattern.
        json_schema_extra={"pattern": rf"^(?:{_SCHEMES})://\S+$"},
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
# The upper bound is this deployment's PROBE_MAX_TIMEOUT_SECONDS (itself at most
# MAX_TIMEOUT_SECONDS), checked by web.devices.check_timeout: one bound, one message.
Timeout = Annotated[
    float,
    Field(
        ge=MIN_TIMEOUT_SECONDS,
        description="probe timeout in seconds; null: the default "
        "(at most PROBE_MAX_TIMEOUT_SECONDS)",
    ),
]
ConditionText = Annotated[
    str, StringConstraints(min_length=1, max_length=CONDITION_MAX), AfterValidator(_condition)
]
Conditions = Annotated[
    list[ConditionText],
    Field(
        max_length=CONDITIONS_MAX,
        description="conditions that must all hold (docs/conditions.md); "
        "null: the kind's default ([STATUS] < 500 for http(s), [CONNECTED] == true for "
        "tcp/tls, [DNS_RCODE] == NOERROR for dns, [MSG_STATUS] == success for recorder)",
        examples=[["[STATUS] == 200", "[BODY].status == UP"]],
    ),
]
DegradedWhen = Annotated[
    list[ConditionText],
    Field(
        max_length=CONDITIONS_MAX,
        description="conditions of which any, on an otherwise passing check, makes it "
        "degraded; null: never degraded",
        examples=[["[RESPONSE_TIME] > 800"]],
    ),
]
Threshold = Annotated[int, Field(ge=1, le=THRESHOLD_MAX)]
RetryInterval = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_INTERVAL_SECONDS,
        description="seconds between probes while the state is changing (at most the "
        "interval); null: the interval",
    ),
]
Method = Annotated[
    Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    Field(description="the HTTP method of an http(s) check; null: GET"),
]
HeaderValue = Annotated[str, StringConstraints(max_length=HEADER_VALUE_MAX)]
Headers = Annotated[
    dict[str, HeaderValue],
    Field(
        max_length=HEADERS_MAX,
        description="HTTP headers sent by an http(s) check (names are HTTP tokens; not "
        "Content-Length, Transfer-Encoding, Connection)",
        examples=[{"Authorization": "Bearer ...", "Accept": "application/json"}],
    ),
    AfterValidator(_headers),
]
RequestBody = Annotated[
    str,
    StringConstraints(max_length=REQUEST_BODY_MAX),
    Field(description="the request body of an http(s) check, sent as UTF-8"),
]
NotifyOn = Annotated[
    list[Literal["down", "up", "degraded"]],
    Field(
        max_length=3,
        description='the state changes that notify; null: ["down", "up"]',
    ),
    AfterValidator(_unique),
]
ChannelIds = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]],
    Field(max_length=CHANNELS_MAX, description="alert channels; null: every default channel"),
    AfterValidator(_unique),
]
Reminder = Annotated[
    int,
    Field(
        ge=0,
        le=REMINDER_MAX_MINUTES,
        description="minutes between reminders while down; 0: none, else at least "
        "REMINDER_MIN_MINUTES (default 5)",
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


def _iso_time(value: object) -> object:
    """A query-string time must be ISO 8601 text (pydantic alone would also take a number
    such as ``0.5`` as a Unix time, which the spec's ``date-time`` does not allow).

    >>> _iso_time("2026-01-01T00:00:00Z")
    datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 time with a zone, such as 2026-01-01T00:00:00Z"
        ) from None


# A time in a query string (``?since=``, ``?before=``): ISO 8601 text only, with a zone,
# in UTC (a time with no UTC value, year 9999 at -23:59, is a 422, not a 500).
QueryTime = Annotated[UtcTime, BeforeValidator(_iso_time)]


class DeviceBase(BaseModel):
    model_config = _INPUT

    name: Name
    address: Address
    is_active: bool = True
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None
    conditions: Conditions | None = None
    degraded_when: DegradedWhen | None = None
    failure_threshold: Threshold = Field(
        3, description="consecutive failing results before the device is down"
    )
    success_threshold: Threshold = Field(
        1, description="consecutive passing results before the device is up again"
    )
    retry_interval_seconds: RetryInterval | None = None
    method: Method | None = None
    headers: Headers | None = None
    body: RequestBody | None = None
    follow_redirects: bool = Field(
        True, description="follow at most 10 redirects; false: a 30x is the answer"
    )
    verify_tls: bool = Field(True, description="verify the certificate of https:// and tls://")
    channel_ids: ChannelIds | None = None
    notify_on: NotifyOn | None = None
    reminder_every_minutes: Reminder = 0
    snoozed_until: AwareDatetime | None = Field(
        None, description="no notifications until then (ISO 8601 with a zone)"
    )
    public: bool = Field(False, description="shown on the public status page and badges")
    public_details: bool = Field(
        False,
        description="with public: the status page also shows the address and the last "
        "check's latency, status code and error text",
    )


class DeviceCreate(DeviceBase):
    """A new device."""


class DeviceUpdate(BaseModel):
    """A partial change: only the fields sent are changed; a nullable field set to null
    goes back to its default."""

    model_config = _INPUT

    # Absent (MISSING) means "unchanged"; null is refused for these (NOT NULL columns).
    name: Name | MISSING = MISSING
    address: Address | MISSING = MISSING
    is_active: bool | MISSING = MISSING
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None
    conditions: Conditions | None = None
    degraded_when: DegradedWhen | None = None
    failure_threshold: Threshold | MISSING = MISSING
    success_threshold: Threshold | MISSING = MISSING
    retry_interval_seconds: RetryInterval | None = None
    method: Method | None = None
    headers: Headers | None = None
    body: RequestBody | None = None
    follow_redirects: bool | MISSING = MISSING
    verify_tls: bool | MISSING = MISSING
    channel_ids: ChannelIds | None = None
    notify_on: NotifyOn | None = None
    reminder_every_minutes: Reminder | MISSING = MISSING
    snoozed_until: AwareDatetime | None = None
    public: bool | MISSING = MISSING
    public_details: bool | MISSING = MISSING

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
    conditions: list[str] | None
    degraded_when: list[str] | None
    failure_threshold: int
    success_threshold: int
    retry_interval_seconds: int | None
    method: str | None
    headers: dict[str, str] | None = Field(
        description='values shown as "***" (they often hold tokens); send "***" back in a '
        "PATCH to keep a stored value"
    )
    body: str | None
    follow_redirects: bool
    verify_tls: bool
    channel_ids: list[int] | None
    notify_on: list[str] | None
    reminder_every_minutes: int
    snoozed_until: datetime | None
    public: bool
    public_details: bool
    created_at: datetime
    updated_at: datetime

    @field_serializer("headers")
    def _masked(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        return mask_values(headers)


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


Outcome = Literal["up", "degraded", "down"]


class VerdictRead(BaseModel):
    """One condition's verdict on a result."""

    condition: str
    success: bool
    actual: str | None = Field(description="the value the condition read, or why none")


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
    source: str = Field(
        description="schedule (its device's schedule), manual (POST /jobs/probe), cycle "
        "(POST /tasks/run, the background loop), entered (POST /devices/{id}/checks; "
        "results entered before this value existed say manual)"
    )
    run_key: str
    slot_at: datetime | None
    outcome: Outcome = Field(
        description="up, degraded or down (status_up is true for up and degraded)"
    )
    verdicts: list[VerdictRead] | None = Field(
        None, description="each condition's verdict; null for a result recorded by hand"
    )
    degraded_verdicts: list[VerdictRead] | None = Field(
        None, description="each degraded_when condition's verdict"
    )
    certificate_expires_at: datetime | None = Field(
        None, description="https:// and tls://: when the peer's certificate expires"
    )
    certificate_subject: str | None = Field(
        None, description="https:// and tls://: the peer certificate's subject (RFC 4514)"
    )
    in_maintenance: bool = Field(
        False,
        description="probed while a suppress_alerts maintenance window covered the device "
        "(no notification; the time is left out of uptime)",
    )

    @model_validator(mode="before")
    @classmethod
    def _outcome_of_old_rows(cls, data: Any) -> Any:
        """Rows stored before conditions have no outcome: it follows their status_up."""
        if not isinstance(data, dict):
            data = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        if data.get("outcome") is None:
            data = {**data, "outcome": "up" if data.get("status_up") else "down"}
        return data


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
    """``/tasks/run/background``: ``running`` is the loop's state after the request;
    ``already_running`` whether it ran before it (POST: nothing was started; DELETE:
    something was stopped)."""

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
