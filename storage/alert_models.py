"""Alert tables: channels, the notifications ledger and maintenance windows.

``notifications`` is keyed by (state change, channel, reminder number): a redelivered
delivery task, or a second process enqueuing the same change, records nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow

CHANNEL_KINDS = ("webhook", "apprise")
NOTIFICATION_STATUSES = ("pending", "sent", "failed", "suppressed")
MAINTENANCE_MODES = ("suppress_alerts", "skip_probes")


class Channel(SQLModel, table=True):
    __tablename__ = "channels"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    # A secret itself (tokens in the path or query, SMTP passwords): masked in responses.
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str | None = Field(default=None, max_length=500)
    headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    is_default: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    is_active: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    # Jinja2 (sandboxed) overrides of the default title and text; None: the default.
    title_template: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    text_template: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Notification(SQLModel, table=True):
    """One (state change, channel, reminder) delivery: ``reminder`` 0 is the change
    itself, n the n-th reminder while the device stays down."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint(
            "state_change_id", "channel_id", "reminder", name="uq_notifications_change_channel"
        ),
        Index("ix_notifications_device", "device_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int
    channel_id: int
    state_change_id: int
    reminder: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    # pending -> sent | failed (after the last try); suppressed never leaves.
    status: str = Field(max_length=12)
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    response_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    # Why it was suppressed: snoozed, maintenance window N; on the notification sent once
    # a window that held the change back is over: after maintenance window N.
    reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class MaintenanceWindow(SQLModel, table=True):
    """A one-off (``start``) or recurring (``cron`` in ``timezone``) window of
    ``duration_seconds`` over ``device_ids`` (None: every device)."""

    __tablename__ = "maintenance_windows"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    device_ids: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    cron: str | None = Field(default=None, max_length=200)
    duration_seconds: int
    timezone: str = Field(default="UTC", max_length=64)
    mode: str = Field(max_length=20)
    is_active: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
