"""The installation's identity: one row, made by migration 0002 when the database is.

Every process on one database reads the same id; the NATS queue records it (jobs.queue.ownership)
so that a process of another installation, with a database of its own, does not take
this one's jobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from storage.migrate import SchemaError
from storage.types import UTCDateTime, utcnow


class Installation(SQLModel, table=True):
    __tablename__ = "installation"

    id: str = Field(primary_key=True, max_length=36)  # a UUID, as text
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


async def installation_id(engine: AsyncEngine) -> str:
    """The id of the installation this database belongs to."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(text("SELECT id FROM installation ORDER BY created_at, id LIMIT 1"))
        ).scalar_one_or_none()
    if found is None:
        raise SchemaError(
            "the database has no installation row (table installation is empty): it was "
            "edited by hand; insert one (any UUID) or restore a backup"
        )
    return str(found)
