"""Test helpers for uptime over the API: a made-up state history for a device, and the
SQL statements a request runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, event, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from jobs.probe.health import encode_health
from jobs.probe.state import Health, State
from storage.models import DeviceHealth, StateChange
from storage.types import utcnow


async def add_changes(
    engine: AsyncEngine, device_id: int, *changes: tuple[str, str, timedelta]
) -> None:
    """A made-up history, and the device's health row where it leaves it (so the results
    recorded after it fold on from there, as the health hook would have)."""
    now = utcnow()
    _frm, last, last_ago = changes[-1]
    health = replace(Health.new(now - last_ago, State(last)), revision=len(changes))
    async with engine.begin() as conn:
        await conn.execute(
            delete(StateChange.__table__).where(col(StateChange.device_id) == device_id)  # type: ignore[attr-defined]
        )
        await conn.execute(
            insert(StateChange.__table__),  # type: ignore[attr-defined]
            [
                {"device_id": device_id, "revision": i + 1, "from_state": frm,
                 "to_state": to, "at": now - ago}
                for i, (frm, to, ago) in enumerate(changes)
            ],
        )  # fmt: skip
        await conn.execute(
            update(DeviceHealth.__table__)  # type: ignore[attr-defined]
            .where(col(DeviceHealth.device_id) == device_id)
            .values(state=last, since=now - last_ago, revision=len(changes),
                    health=encode_health(health))
        )  # fmt: skip


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
