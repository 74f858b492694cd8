"""Fixtures of the storage tests shared by several modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage.db import init_db, make_engine
from tests.storage.test_postgres import empty_database


@pytest.fixture
async def pg() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines (two processes' pools) on one fresh PostgreSQL database of its own
    (skipped without a server, a failure under CI=true: ``empty_database``)."""
    async with empty_database() as url:
        first = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        second = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await init_db(first)
            yield first, second
        finally:
            await first.dispose()
            await second.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def blank_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database with no table yet, once a SQLite file and once a fresh
    PostgreSQL database (skipped without a server, a failure under CI=true): what a
    migration's upgrade test builds an old schema in."""
    if request.param == "sqlite":
        engine = make_engine(Settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"))  # type: ignore[call-arg]
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    async with empty_database() as url:
        engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            yield engine
        finally:
            await engine.dispose()
