"""Recorder queries: command history and schedules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.recorder_models import CommandResult, RecorderSchedule
from storage.repo import add_row, update_row


async def get_command(session: AsyncSession, run_key: str) -> CommandResult | None:
    stmt = select(CommandResult).where(CommandResult.run_key == run_key)
    return (await session.exec(stmt)).first()


async def list_commands(
    session: AsyncSession, task_id: str, limit: int = 50
) -> Sequence[CommandResult]:
    """Newest first."""
    stmt = (
        select(CommandResult)
        .where(CommandResult.task_id == task_id)
        .order_by(col(CommandResult.created_at).desc(), col(CommandResult.id).desc())
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


async def last_reply(session: AsyncSession, task_id: str) -> CommandResult | None:
    """The newest command of ``task_id`` the recorder answered (any ``cmd``: each reply
    says what the recorder was doing), or None."""
    stmt = (
        select(CommandResult)
        .where(CommandResult.task_id == task_id, col(CommandResult.app_status).is_not(None))
        .order_by(col(CommandResult.created_at).desc(), col(CommandResult.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def list_schedules(
    session: AsyncSession, *, is_active: bool | None = None, task_id: str | None = None
) -> Sequence[RecorderSchedule]:
    stmt = select(RecorderSchedule).order_by(col(RecorderSchedule.id))
    if is_active is not None:
        stmt = stmt.where(RecorderSchedule.is_active == is_active)
    if task_id is not None:
        stmt = stmt.where(RecorderSchedule.task_id == task_id)
    return (await session.exec(stmt)).all()


async def get_schedule(session: AsyncSession, schedule_id: int) -> RecorderSchedule | None:
    return await session.get(RecorderSchedule, schedule_id)


async def create_schedule(session: AsyncSession, **fields: Any) -> RecorderSchedule:
    return await add_row(session, RecorderSchedule(**fields))


async def update_schedule(
    session: AsyncSession, schedule: RecorderSchedule, **changes: Any
) -> RecorderSchedule:
    return await update_row(session, schedule, **changes)


async def delete_schedule(session: AsyncSession, schedule: RecorderSchedule) -> None:
    """Delete the schedule; the commands it sent stay in the history."""
    await session.delete(schedule)
    await session.commit()
