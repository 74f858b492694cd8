"""The recorder's wire format: commands sent on ``NATS_SUBJECT``, replies received.

Kept to the letter of the NATS01 client (see ``docs/recorder.md``)::

    >>> Command(task_id="task01", cmd="status").to_wire()
    {'task_id': 'task01', 'cmd': 'status', 'payload': None}
    >>> Command(task_id="task01", cmd="stop").to_wire()["payload"]
    {'segment_time': 300.0}
    >>> r = Response.model_validate_json(
    ...     b'{"task_id": "t", "msg_status": "success", "app_status": "started",'
    ...     b' "payload": {"at_started": "2025-10-15T08:55:00Z", "at_stopped": ""}}')
    >>> r.payload.at_started.isoformat(), r.payload.at_stopped
    ('2025-10-15T08:55:00+00:00', None)

What the real recorder does, all accepted: each reply field of ``payload`` may be
``null``; ``at_stopped`` is ``""`` while recording (read as ``None``); a ``status``
command may come with ``"payload": null`` or no ``payload`` key; a ``stop`` payload may
carry the start fields as ``null``.  Times are ISO 8601 UTC and are written with ``Z``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
)

CommandName = Literal["start", "stop", "status"]
MsgStatus = Literal["success", "error"]
AppStatus = Literal["started", "stopped", "error"]

COMMANDS: tuple[CommandName, ...] = ("start", "stop", "status")
TASK_ID_MAX = 128


def format_utc(value: datetime) -> str:
    """``2025-10-15T08:55:00Z``: UTC with a ``Z``, microseconds only when present."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _as_utc(value: Any) -> Any:
    """``""`` means "no time" (the recorder's ``at_stopped`` while recording)."""
    if value == "":
        return None
    if isinstance(value, str):
        # Python 3.11 reads "Z" itself; a time without an offset is taken as UTC.
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _dump_utc(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


UtcTime = Annotated[
    datetime | None,
    BeforeValidator(_as_utc),
    PlainSerializer(_dump_utc, return_type=str | None, when_used="json"),
]


class StartPayload(BaseModel):
    """Recording parameters of ``start``; every field has the recorder's default."""

    model_config = ConfigDict(extra="forbid")

    segment_time: float = Field(300.0, gt=0, le=7 * 24 * 3600, description="seconds per file")
    snd_source: str = Field("pulsesrc01", min_length=1, max_length=200)
    snd_byterate: int = Field(96, gt=0, le=100_000, description="audio kbit/s")
    vid_stream: str = Field("main", min_length=1, max_length=200)
    vid_byterate: int = Field(2000, gt=0, le=1_000_000, description="video kbit/s")


class StopPayload(BaseModel):
    """``stop``: ``segment_time``; the start fields may ride along, usually as ``null``."""

    model_config = ConfigDict(extra="forbid")

    segment_time: float | None = Field(300.0, gt=0, le=7 * 24 * 3600)
    snd_source: str | None = None
    snd_byterate: int | None = None
    vid_stream: str | None = None
    vid_byterate: int | None = None


CommandPayload = StartPayload | StopPayload | None


def payload_for(cmd: CommandName, payload: Any) -> CommandPayload:
    """The payload model ``cmd`` carries, built from ``payload`` (a dict, model or None).

    Raises ``ValueError`` naming each wrong field::

        >>> payload_for("start", {"vid_byterate": 2500}).vid_byterate
        2500
        >>> payload_for("status", {"anything": 1}) is None
        True
    """
    if cmd == "status":
        return None  # the recorder ignores a status payload; so do we
    model: type[StartPayload] | type[StopPayload] = StartPayload if cmd == "start" else StopPayload
    if isinstance(payload, model):
        return payload
    if isinstance(payload, BaseModel):
        payload = payload.model_dump()
    try:
        return model.model_validate({} if payload is None else payload)
    except ValidationError as exc:
        raise ValueError(f"invalid {cmd} payload: {describe(exc)}") from None


def payload_json(payload: CommandPayload) -> dict[str, Any] | None:
    """A payload as sent: ``stop`` leaves out its ``null`` fields."""
    if payload is None:
        return None
    if isinstance(payload, StopPayload):
        return payload.model_dump(mode="json", exclude_none=True)
    return payload.model_dump(mode="json")


def describe(exc: ValidationError) -> str:
    """``field: message; other: message`` — one line for logs and API errors."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class Command(BaseModel):
    """One command to the recorder: ``{"task_id", "cmd", "payload"}``."""

    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(min_length=1, max_length=TASK_ID_MAX)
    cmd: CommandName
    # validate_default: a start without a payload key still carries the defaults.
    payload: CommandPayload = Field(None, validate_default=True)

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_matches_cmd(cls, value: Any, info: ValidationInfo) -> CommandPayload:
        cmd = info.data.get("cmd")
        if cmd is None:  # cmd itself was invalid; its own error says so
            return None
        return payload_for(cmd, value)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent on the wire."""
        return {"task_id": self.task_id, "cmd": self.cmd, "payload": payload_json(self.payload)}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()


class ResponsePayload(BaseModel):
    """What the recorder reports; each field may be ``null``."""

    model_config = ConfigDict(extra="ignore")

    segment_time: float | None = None
    file_path: str | None = None
    at_started: UtcTime = None
    at_stopped: UtcTime = None


class Response(BaseModel):
    """The recorder's reply.  ``msg_status == "error"`` is a valid reply, not a fault."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    msg_status: MsgStatus
    app_status: AppStatus
    payload: ResponsePayload = Field(default_factory=ResponsePayload)
    # Not in the seed's format: the reference recorder says why it refused a command.
    reason: str | None = None

    @field_validator("payload", mode="before")
    @classmethod
    def _null_payload_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def to_wire(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if data["reason"] is None:
            del data["reason"]
        return data

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()
