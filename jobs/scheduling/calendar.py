"""Maintenance windows read from the database, for the probe scheduler (skip_probes) and
the alerts (suppress): :func:`load_windows` once, or :class:`MaintenanceCalendar`, which
keeps them for ``refresh_seconds``."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.scheduling.cron import ScheduleError
from jobs.scheduling.windows import Window, in_maintenance, window_of
from storage import alert_repo

log = logging.getLogger(__name__)


async def load_windows(engine: AsyncEngine) -> list[Window]:
    """The active windows (a row that no longer parses, say its time zone left the
    system's database, is skipped with a warning)."""
    rows = await alert_repo.active_windows(engine)  # Core: no ORM session per read
    windows = []
    for row in rows:
        try:
            windows.append(
                window_of(
                    row.id,
                    row.device_ids,
                    row.start,
                    row.cron,
                    timedelta(seconds=row.duration_seconds),
                    row.timezone,
                    row.mode,
                    created_at=row.created_at,
                )
            )
        except ScheduleError as exc:
            log.warning("maintenance window skipped id=%s error=%s", row.id, exc)
    return windows


class MaintenanceCalendar:
    """The windows, re-read at most every ``refresh_seconds``."""

    def __init__(self, engine: AsyncEngine, refresh_seconds: float = 30.0) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self.windows: list[Window] = []
        self._loaded_at: float | None = None

    async def current(self) -> list[Window]:
        now = time.monotonic()
        if self._loaded_at is None or now - self._loaded_at >= self.refresh_seconds:
            try:
                self.windows = await load_windows(self.engine)
            except Exception as exc:  # keep the last known windows while the database is away
                log.warning("maintenance windows not read error=%s", exc)
            self._loaded_at = now
        return self.windows

    async def window_for(
        self, device_id: int, t: datetime, mode: str | None = None
    ) -> Window | None:
        return in_maintenance(await self.current(), device_id, t, mode)
