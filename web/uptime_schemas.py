"""What ``/devices/{id}/uptime`` and ``/status`` answer (and the query they read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from storage.uptime_maths import DEFAULT_WINDOWS, parse_windows
from web.endpoints import QueryModel


def _windows(value: str) -> str:
    parse_windows(value)  # ValueError: a 422 naming ["query", "windows"]
    return value


class UptimeQuery(QueryModel):
    windows: Annotated[str, AfterValidator(_windows)] = Field(
        DEFAULT_WINDOWS,
        max_length=200,
        description="trailing windows, comma-separated <n>h or <n>d (at most 400d, ten windows)",
        examples=["24h,7d,30d"],
    )


class StatusQuery(QueryModel):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31)
    recent: int = Field(
        0, ge=0, le=100, description="also each device's this many newest results (sparklines)"
    )


class WindowUptime(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    window: str = Field(description="the window as asked, e.g. 24h")
    uptime_percent: float | None = Field(
        description="time up or degraded over the time known (up + degraded + down); "
        "null when no state is known in the window"
    )
    degraded_percent: float | None = Field(description="time degraded over the time known")
    down_percent: float | None = Field(description="time down over the time known")
    unknown_seconds: float = Field(description="time in no known state (no result yet, stale)")
    paused_seconds: float = Field(description="time paused (is_active false): not counted")
    maintenance_seconds: float = Field(
        description="time in the device's maintenance windows (either mode), whatever its "
        "state: not counted"
    )
    checks: int = Field(description="results stored in the window (whole hours at its start)")
    latency_p50_ms: float | None = Field(description="median latency, from the histogram")
    latency_p95_ms: float | None = Field(description="95th percentile latency")
    latency_max_ms: float | None = Field(description="the highest latency, exact")


class DeviceUptime(BaseModel):
    device_id: int
    at: datetime = Field(description="the end of every window (now)")
    windows: list[WindowUptime]


class LastCheck(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    checked_at: datetime
    outcome: str = Field(description="up, degraded or down")
    status_up: bool
    latency_ms: float | None


class RecentCheck(BaseModel):
    checked_at: datetime
    run_key: str
    outcome: str = Field(description="up, degraded or down")
    status_up: bool
    latency_ms: float | None


class DeviceStatus(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: int
    name: str
    state: str = Field(description="up, degraded, down, unknown or paused")
    since: datetime | None = Field(description="when the device entered its state")
    last_check: LastCheck | None = Field(description="the newest stored result")
    uptime_24h: float | None = Field(
        description="uptime percent over the last 24 hours, maintenance time left out"
    )
    uptime_30d: float | None = Field(
        description="uptime percent over the last 30 days, maintenance time left out"
    )
    recent: list[RecentCheck] | None = Field(
        None, description="with ?recent=N: the newest N results, oldest first"
    )
