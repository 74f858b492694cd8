"""What the alert endpoints read and write: channels, notifications, maintenance windows
and snoozes.  Secrets never go out: a channel's URL is masked (Apprise masks its own
URLs), ``secret`` and header values are shown as ``***``.  Example::

    >>> MaintenanceCreate.model_validate_json(
    ...     '{"name": "patch", "cron": "0 2 * * 0", "duration": "PT2H",'
    ...     ' "timezone": "Europe/Berlin"}').duration.total_seconds()
    7200.0
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    MISSING,
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from core.secrets import MASK
from jobs.alerts.senders import check_apprise_url, mask_url
from jobs.alerts.templates import SAMPLE, TemplateProblem, render_template
from jobs.scheduling.cron import ScheduleError, cron_trigger
from jobs.scheduling.windows import MODES, occurrence, window_of, zone
from storage.alert_models import CHANNEL_KINDS, NOTIFICATION_STATUSES
from storage.types import MAX_ID, utcnow

_INPUT = ConfigDict(extra="forbid", strict=True)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ChannelKind = Literal["webhook", "apprise"]
Template = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


def _header_names(value: dict[str, str] | None) -> dict[str, str] | None:
    # Checked here, not as a key schema: OpenAPI 3.0 has no propertyNames.
    for name in value or {}:
        if not 0 < len(name) <= 200 or not name.isascii() or any(c in name for c in " :\r\n"):
            raise ValueError(f"header name {name[:50]!r} is not a valid HTTP header name")
    return value


Headers = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=2000)]],
    Field(max_length=50),
    AfterValidator(_header_names),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Mode = Literal["suppress_alerts", "skip_probes"]
assert set(CHANNEL_KINDS) == {"webhook", "apprise"} and set(MODES) == {
    "suppress_alerts",
    "skip_probes",
}


def _template_renders(value: str | None) -> str | None:
    if value is not None:
        try:
            render_template(value, SAMPLE)
        except TemplateProblem as exc:
            raise ValueError(f"template does not render with the sample data: {exc}") from None
    return value


def check_channel_url(kind: str, url: str) -> str | None:
    """Why ``url`` cannot serve a channel of ``kind`` (None: it can)."""
    if kind == "apprise":
        try:
            check_apprise_url(url)
        except ValueError as exc:
            return str(exc)
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "a webhook URL is http:// or https:// with a host"
    return None


class ChannelCreate(BaseModel):
    """A channel: ``webhook`` (a signed JSON POST to ``url``) or ``apprise`` (any Apprise
    URL: ``ntfy://ntfy.sh/topic``, ``slack://…``, ``mailto://…``)."""

    model_config = _INPUT

    name: Name
    kind: ChannelKind
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
    secret: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        None, description="webhook: signs the body (X-Fleetprobe-Signature: sha256=<hex>)"
    )
    headers: Headers | None = Field(None, description="webhook: extra request headers")
    is_default: bool = Field(False, description="used by devices that name no channel_ids")
    is_active: bool = True
    title_template: Template | None = Field(None, description="Jinja2; null: the default")
    text_template: Template | None = Field(None, description="Jinja2; null: the default")

    _templates = field_validator("title_template", "text_template")(_template_renders)


class ChannelUpdate(BaseModel):
    model_config = _INPUT

    name: Name | MISSING = MISSING
    kind: ChannelKind | MISSING = MISSING
    url: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
        | MISSING
    ) = MISSING
    secret: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    headers: Headers | None = None
    is_default: bool | MISSING = MISSING
    is_active: bool | MISSING = MISSING
    title_template: Template | None = None
    text_template: Template | None = None

    _templates = field_validator("title_template", "text_template")(_template_renders)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ChannelRead(BaseModel):
    id: int
    name: str
    kind: str
    url: str = Field(description="masked: tokens and passwords are never shown")
    secret: str | None = Field(description='"***" when set')
    headers: dict[str, str] | None = Field(description='values shown as "***"')
    is_default: bool
    is_active: bool
    title_template: str | None
    text_template: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ChannelRead:
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            url=mask_url(row.kind, row.url),
            secret=MASK if row.secret else None,
            headers={k: MASK for k in row.headers} if row.headers else row.headers,
            is_default=row.is_default,
            is_active=row.is_active,
            title_template=row.title_template,
            text_template=row.text_template,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ChannelTestReport(BaseModel):
    ok: bool
    response_code: int | None
    error: str | None
    answer: str | None = Field(description="the start of the receiver's answer (webhooks)")


assert set(NOTIFICATION_STATUSES) == {"pending", "sent", "failed", "suppressed"}


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: int
    channel_id: int
    state_change_id: int
    reminder: int
    status: str
    attempts: int
    response_code: int | None
    error: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


def _duration_positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("duration must be positive")
    if value > timedelta(days=31):
        raise ValueError("duration must be at most 31 days")
    return value


# The latest start accepted: the longest duration after it still has a time (year 9999).
LAST_START = datetime.max.replace(tzinfo=UTC) - timedelta(days=32)


def _start_in_range(value: datetime | None) -> datetime | None:
    if value is not None:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range once converted to UTC") from None
        if utc > LAST_START:
            raise ValueError(f"start must be at most {LAST_START.date().isoformat()}")
    return value


def _zone_exists(value: str) -> str:
    try:
        zone(value)
    except ScheduleError as exc:
        raise ValueError(str(exc)) from None
    return value


def _cron_parses(value: str | None) -> str | None:
    if value is not None:
        try:
            trigger = cron_trigger(value)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None
        if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ValueError(f"cron {value!r} never fires")
    return value


Duration = Annotated[
    timedelta,
    Field(strict=False),
    # Both spellings are accepted, and the spec says so (pydantic's own says string only).
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "duration"}],
            "description": 'seconds, or ISO 8601 ("PT2H")',
        }
    ),
]
Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Cron = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class MaintenanceCreate(BaseModel):
    """A window: one-off (``start`` + ``duration``) or recurring (``cron`` + ``duration``,
    the cron read in ``timezone``).  ``device_ids`` null: every device.  ``mode``:
    ``suppress_alerts`` (probes go on, results are marked, no notification) or
    ``skip_probes`` (no probes, no alerts)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "name": "patch night",
                "cron": "0 2 * * 0",
                "duration": "PT2H",
                "timezone": "Europe/Berlin",
                "device_ids": [1],
            }
        },
    )

    name: Name
    device_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None
    start: AwareDatetime | None = None
    cron: Cron | None = None
    duration: Duration
    timezone: Timezone = "UTC"
    mode: Mode = "suppress_alerts"
    is_active: bool = True

    _duration = field_validator("duration")(_duration_positive)
    _start = field_validator("start")(_start_in_range)
    _zone = field_validator("timezone")(_zone_exists)
    _cron = field_validator("cron")(_cron_parses)

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceCreate:
        if (self.start is None) == (self.cron is None):
            raise ValueError("give exactly one of start (one-off) and cron (recurring)")
        return self


class MaintenanceUpdate(BaseModel):
    model_config = _INPUT

    name: Name | MISSING = MISSING
    device_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None
    start: AwareDatetime | None = None
    cron: Cron | None = None
    duration: Duration | MISSING = MISSING
    timezone: Timezone | MISSING = MISSING
    mode: Mode | MISSING = MISSING
    is_active: bool | MISSING = MISSING

    def merged(self, current: dict[str, Any]) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True)
        if changes.get("cron") is not None:
            changes.setdefault("start", None)
        if changes.get("start") is not None:
            changes.setdefault("cron", None)
        return {**current, **changes}


def _open_until(row: Any, now: datetime) -> datetime | None:
    """The end of the occurrence of the window ``row`` covering ``now`` (None: none does)."""
    if not row.is_active:
        return None
    try:
        window = window_of(
            row.id, row.device_ids, row.start, row.cron,
            timedelta(seconds=row.duration_seconds), row.timezone, row.mode,
        )  # fmt: skip
    except ScheduleError:
        return None  # a zone gone from the system: the calendar skips it too
    start, until = occurrence(window, now)
    return None if start is None else until


class MaintenanceRead(BaseModel):
    id: int
    name: str
    device_ids: list[int] | None
    start: datetime | None
    cron: str | None
    duration: float = Field(description="seconds")
    timezone: str
    mode: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    open_until: datetime | None = Field(
        description="in force now: the end of the current occurrence; null when the window "
        "is not in force (or not active)"
    )

    @classmethod
    def of(cls, row: Any, now: datetime | None = None) -> MaintenanceRead:
        return cls(
            id=row.id, name=row.name, device_ids=row.device_ids, start=row.start, cron=row.cron,
            duration=float(row.duration_seconds), timezone=row.timezone, mode=row.mode,
            is_active=row.is_active, created_at=row.created_at, updated_at=row.updated_at,
            open_until=_open_until(row, now or utcnow()),
        )  # fmt: skip

    def as_input(self) -> dict[str, Any]:
        return {
            "name": self.name, "device_ids": self.device_ids, "start": self.start,
            "cron": self.cron, "duration": timedelta(seconds=self.duration),
            "timezone": self.timezone, "mode": self.mode, "is_active": self.is_active,
        }  # fmt: skip


class SnoozeBody(BaseModel):
    model_config = _INPUT

    until: AwareDatetime = Field(description="alerts of the device stay silent until then")


class SnoozeRead(BaseModel):
    device_id: int
    snoozed_until: datetime | None
