"""``storage/uptime.py``'s :func:`uptime_percents` (the status page's and the badges'
uptime, many devices at once) against :func:`device_uptime` (``GET /devices/{id}/uptime``)
on a real SQLite file and on PostgreSQL: the same figure, in two queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage import repo
from storage.db import init_db, make_engine, session_factory
from storage.models import DeviceHealth, StateChange
from storage.uptime import device_uptime, uptime_percents
from storage.uptime_maths import Period, parse_window, parse_windows
from tests.storage.test_postgres import empty_database
from tests.web.history import counted_statements

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        eng = make_engine(Settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"))  # type: ignore[call-arg]
        await init_db(eng)
        yield eng
        await eng.dispose()
        return
    async with empty_database() as url:
        eng = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await init_db(eng)
            yield eng
        finally:
            await eng.dispose()


async def device_with(
    engine: AsyncEngine,
    changes: Sequence[tuple[str, str, timedelta]],
    health: tuple[str, timedelta] | None,
) -> int:
    """A device with these state changes (from, to, how long before NOW) and health row
    (state, since how long before NOW)."""
    async with session_factory(engine)() as session:
        device = await repo.create_device(session, name="d", address="http://x.test/")
    assert device.id is not None
    async with engine.begin() as conn:
        if changes:
            await conn.execute(
                insert(StateChange.__table__),  # type: ignore[attr-defined]
                [
                    {"device_id": device.id, "revision": i + 1, "from_state": frm,
                     "to_state": to, "at": NOW - ago}
                    for i, (frm, to, ago) in enumerate(changes)
                ],
            )  # fmt: skip
        if health is not None:
            state, ago = health
            await conn.execute(
                insert(DeviceHealth.__table__).values(  # type: ignore[attr-defined]
                    device_id=device.id, state=state, since=NOW - ago, revision=len(changes),
                    health={}, updated_at=NOW,
                )
            )  # fmt: skip
    return device.id


OUTAGE = (("unknown", "up", 10 * H), ("up", "down", 6 * H), ("down", "up", 4 * H))


async def test_many_devices_get_the_uptime_of_one_device_in_two_queries(
    engine: AsyncEngine,
) -> None:
    patched = await device_with(engine, OUTAGE, ("up", 4 * H))
    steady = await device_with(engine, OUTAGE, ("up", 4 * H))
    # no state change: its health row holds from its since on, unknown before
    fresh = await device_with(engine, (), ("up", 2 * H))
    # paused time is left out, like unknown time
    paused = await device_with(
        engine, (("unknown", "down", 8 * H), ("down", "up", 7 * H), ("up", "paused", 3 * H)),
        ("paused", 3 * H),
    )  # fmt: skip
    blank = await device_with(engine, (), None)  # no health row: nothing is known
    missing = 424242
    maintenance: dict[int, list[Period]] = {patched: [(NOW - 5 * H, NOW - 4 * H)]}

    def periods(device_id: int) -> list[Period]:
        return maintenance.get(device_id, [])

    ids = [patched, steady, fresh, paused, blank, missing]
    expected = {
        # known: 10 hours (9 outside maintenance); paused: down 1 hour of 5 known
        "24h": {patched: 800 / 9, steady: 80.0, fresh: 100.0, paused: 80.0, blank: None},
        # from an hour before the outage: patched down 1 of 6 known hours, steady 2 of 7;
        # paused up its 4 known hours (its hour down was before)
        "7h": {patched: 500 / 6, steady: 500 / 7, fresh: 100.0, paused: 100.0, blank: None},
    }
    for label, figures in expected.items():
        window = parse_window(label)
        with counted_statements(engine) as statements:
            async with engine.connect() as conn:
                found = await uptime_percents(conn, ids, window, NOW, periods)
        assert len(statements) == 2
        assert found[missing] is None
        for device_id in ids[:-1]:
            [one] = await device_uptime(
                engine, device_id, [window], NOW, periods(device_id)
            ) or []  # fmt: skip
            assert found[device_id] == one.uptime_percent, (label, device_id)
            want = figures[device_id]
            got = found[device_id]
            assert (got is None) if want is None else abs((got or 0) - want) < 1e-3, (
                label, device_id, got,
            )  # fmt: skip


async def test_no_devices_is_no_query(engine: AsyncEngine) -> None:
    with counted_statements(engine) as statements:
        async with engine.connect() as conn:
            assert await uptime_percents(conn, [], parse_windows("24h")[0], NOW) == {}
    assert statements == []
