"""Rows for alert tests: devices, channels and state changes inserted as W2's health hook
would (the change is then handed to the enqueue function)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.alerts.enqueue import ChangeRecord
from storage.alert_models import Channel, Notification
from storage.db import session_factory
from storage.models import Device, StateChange
from storage.types import utcnow
from tests.helpers import wait_for


async def add_device(engine: AsyncEngine, **fields: Any) -> int:
    async with session_factory(engine)() as session:
        name, address = fields.pop("name", "edge"), fields.pop("address", "http://127.0.0.1:9/")
        device = Device(name=name, address=address, **fields)
        session.add(device)
        await session.commit()
        assert device.id is not None
        return device.id


async def add_channel(engine: AsyncEngine, url: str, **fields: Any) -> int:
    fields.setdefault("kind", "webhook")
    fields.setdefault("is_default", True)
    async with session_factory(engine)() as session:
        channel = Channel(name=fields.pop("name", "hook"), url=url, **fields)
        session.add(channel)
        await session.commit()
        assert channel.id is not None
        return channel.id


async def add_change(
    engine: AsyncEngine,
    device_id: int,
    revision: int,
    from_state: str,
    to_state: str,
    at: datetime | None = None,
) -> ChangeRecord:
    async with session_factory(engine)() as session:
        row = StateChange(device_id=device_id, revision=revision, from_state=from_state,
                          to_state=to_state, at=at or utcnow(), cause=f"went {to_state}",
                          run_key=f"probe:{device_id}:{revision}")  # fmt: skip
        session.add(row)
        await session.commit()
        await session.refresh(row)
        assert row.id is not None
        return ChangeRecord(row.id, device_id, revision, from_state, to_state, row.at,
                            row.cause, row.run_key)  # fmt: skip


async def notifications(engine: AsyncEngine) -> list[Notification]:
    from sqlmodel import col, select

    async with session_factory(engine)() as session:
        stmt = select(Notification).order_by(col(Notification.id))
        return list((await session.exec(stmt)).all())


async def eventually(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Wait until a plain predicate holds (tests.helpers.wait_for takes a coroutine)."""

    async def check() -> bool:
        return predicate()

    await wait_for(check, timeout=timeout, what=what)
