"""What the API shows of a device's state history (never the tables)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class StateChangeRead(BaseModel):
    """One change of a device's state, with the ``device.state_changed`` event's names."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    device_id: int
    revision: int = Field(description="the health revision this change produced")
    from_state: str = Field(alias="from", description="unknown, up, degraded, down or paused")
    to_state: str = Field(alias="to")
    at: datetime = Field(description="when the state changed (the causing result's slot)")
    cause: str | None = Field(description="what failed, or why (stale, paused, resumed)")
    run_key: str | None = Field(description="the result that caused it; null for stale/pause")


class IncidentRead(BaseModel):
    """A down period: from a change to ``down`` until the next change away from it."""

    started_at: datetime
    ended_at: datetime | None = Field(description="null while the device is still down")
    cause: str | None
    duration_seconds: float = Field(description="so far, while open")
