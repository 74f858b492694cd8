"""Device health at the database (jobs/probe/health.py over storage/health.py): results
stored through the real check writer on a real SQLite file, folded in slot order, each
change stored once as a row and announced once on NATS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.events import DEVICE_RETRYING, DEVICE_STATE_CHANGED, EventPublisher
from jobs.probe.health import HealthTracker, StateChangeRecord, cause
from jobs.probe.scheduler import ProbeScheduler
from storage.db import init_db, make_engine, session_factory
from storage.installation import installation_id
from storage.models import CheckResult, Device, DeviceHealth, StateChange
from storage.types import isoformat_z
from storage.writer import BatchWriter
from tests.helpers import collect_events, running_worker, wait_for
from tests.storage.test_postgres import empty_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def check(device_id: int, n: int, up: bool, **extra: Any) -> dict[str, Any]:
    """The n-th scheduled result of a device (slot T0 + n minutes)."""
    slot = T0 + timedelta(minutes=n)
    return {
        "device_id": device_id,
        "status_up": up,
        "latency_ms": 1.0,
        "checked_at": slot + timedelta(seconds=1),
        "run_key": f"probe:{device_id}:{n}",
        "slot_at": slot,
        "status_code": 200 if up else 500,
        "error_kind": None,
        "error": None if up else "status 500",
        "source": "schedule",
        **extra,
    }


async def add_device(engine: AsyncEngine, **fields: Any) -> int:
    async with session_factory(engine)() as session:
        device = Device(name="d", address="http://127.0.0.1:1/", created_at=T0, **fields)
        session.add(device)
        await session.commit()
        assert device.id is not None
        return device.id


async def changes(engine: AsyncEngine, device_id: int) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(StateChange.__table__)  # type: ignore[attr-defined]
                .where(StateChange.__table__.c.device_id == device_id)  # type: ignore[attr-defined]
                .order_by(StateChange.__table__.c.revision)  # type: ignore[attr-defined]
            )
        ).all()
    return [(r.from_state, r.to_state, r.run_key) for r in rows]


async def state(engine: AsyncEngine, device_id: int) -> str:
    async with session_factory(engine)() as session:
        row = await session.get(DeviceHealth, device_id)
        assert row is not None
        return row.state


@pytest.fixture
async def tracked(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[tuple[BatchWriter, HealthTracker, list[StateChangeRecord]]]:
    """The check writer with the health hook, as jobs/worker.py builds it, publishing on
    the test's events subject; and what its listener was told."""
    nc = await nats.connect(settings.nats_url)
    installation = await installation_id(engine)
    tracker = HealthTracker(EventPublisher(nc, settings.events_subject, "test", installation))
    told: list[StateChangeRecord] = []

    async def listener(changes: Sequence[StateChangeRecord]) -> None:
        assert changes  # never called with none
        told.extend(changes)

    tracker.add_listener(listener)
    table = CheckResult.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(engine, table, "run_key", flush_ms=2, after_insert=[tracker.after_insert])
    yield writer, tracker, told
    await writer.close()
    await nc.close()


async def test_a_device_goes_down_after_its_failure_threshold_and_up_at_once(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    writer, _, told = tracked
    device = await add_device(engine, failure_threshold=2)
    async with collect_events(settings) as events:
        await writer.write(check(device, 0, True))
        await writer.write(check(device, 1, False))
        assert await state(engine, device) == "up"  # one failure of two: still up
        await writer.write(check(device, 2, False))
        assert await state(engine, device) == "down"
        await writer.write(check(device, 3, True))
        assert await state(engine, device) == "up"

        def got() -> list[dict[str, Any]]:
            return [e for e in events if e["type"] == DEVICE_STATE_CHANGED]

        async def three() -> bool:
            return len(got()) == 3

        await wait_for(three, what="three device.state_changed events")
    assert await changes(engine, device) == [
        ("unknown", "up", f"probe:{device}:0"),
        ("up", "down", f"probe:{device}:2"),
        ("down", "up", f"probe:{device}:3"),
    ]
    down = got()[1]["payload"]
    assert down == {
        "device_id": device,
        "from": "up",
        "to": "down",
        "since": isoformat_z(T0 + timedelta(minutes=2)),
        "cause": "status 500",
        "run_key": f"probe:{device}:2",
    }
    assert [(c.from_state, c.to_state) for c in told] == [
        ("unknown", "up"),
        ("up", "down"),
        ("down", "up"),
    ]


async def test_results_out_of_order_give_the_state_of_slot_order(
    engine: AsyncEngine, tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]]
) -> None:
    writer, _, _ = tracked
    device = await add_device(engine, failure_threshold=2)
    await writer.write(check(device, 0, True))
    # Slots 1 and 3 fail, slot 2 passes: in slot order never two failures in a row,
    # though slot 1, arriving last, follows a failure in arrival order.
    await writer.write(check(device, 2, True))
    await writer.write(check(device, 3, False))
    await writer.write(check(device, 1, False))
    assert await state(engine, device) == "up"
    assert await changes(engine, device) == [("unknown", "up", f"probe:{device}:0")]


async def test_one_batch_holding_several_results_of_a_device_is_folded_in_slot_order(
    engine: AsyncEngine, tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]]
) -> None:
    writer, _, _ = tracked
    device = await add_device(engine, failure_threshold=3)
    # One batch (written together), newest first.
    await asyncio.gather(*(writer.write(check(device, n, False)) for n in (5, 4, 3, 2)))
    assert await state(engine, device) == "down"
    assert await changes(engine, device) == [("unknown", "down", f"probe:{device}:4")]


async def test_a_redelivered_result_changes_nothing(
    engine: AsyncEngine, tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]]
) -> None:
    writer, tracker, _ = tracked
    device = await add_device(engine, failure_threshold=1)
    await writer.write(check(device, 0, False))
    async with session_factory(engine)() as session:
        before = await session.get(DeviceHealth, device)
        assert before is not None and before.state == "down"
    # The same run again (a redelivered task) and again with another outcome.
    assert await writer.write(check(device, 0, False)) is None
    assert await writer.write(check(device, 0, True)) is None
    async with session_factory(engine)() as session:
        after = await session.get(DeviceHealth, device)
        assert after is not None
    assert (after.revision, after.state) == (before.revision, "down")
    assert await changes(engine, device) == [("unknown", "down", f"probe:{device}:0")]
    assert tracker.changes_announced == 1


async def test_the_outcome_and_failing_verdicts_decide_and_explain(
    engine: AsyncEngine, tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]]
) -> None:
    writer, _, told = tracked
    device = await add_device(engine, failure_threshold=1)
    verdicts = [
        {"condition": "[STATUS] == 200", "success": True, "actual": "200"},
        {"condition": "[BODY].ok == true", "success": False, "actual": "false"},
    ]
    # status_up true but the conditions say down: the outcome wins.
    await writer.write(check(device, 0, True, outcome="down", verdicts=verdicts))
    await writer.write(check(device, 1, True, outcome="degraded"))
    assert [(c.to_state, c.cause) for c in told] == [
        ("down", "[BODY].ok == true (actual false)"),
        ("degraded", None),
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"outcome": "up", "status_up": True}, None),
        ({"status_up": True}, None),
        ({"status_up": False, "error": "connection refused"}, "connection refused"),
        ({"status_up": False, "error": None, "status_code": 503}, "status 503"),
        (
            {
                "outcome": "degraded",
                "degraded_verdicts": [
                    {"condition": "[RESPONSE_TIME] > 800", "success": True, "actual": "950"},
                    {"condition": "[STATUS] == 203", "success": False, "actual": "200"},
                ],
            },
            "[RESPONSE_TIME] > 800 (actual 950)",
        ),
        ({"outcome": "down", "verdicts": [], "error": "x" * 900}, "x" * 500),
    ],
)
def test_cause_of_a_result(row: dict[str, Any], expected: str | None) -> None:
    assert cause(row) == expected


async def test_a_device_with_no_result_for_two_intervals_becomes_unknown(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    writer, tracker, told = tracked
    device = await add_device(engine, interval_seconds=60, timeout_seconds=5)
    await writer.write(check(device, 0, True))
    last = T0  # slot 0
    # Not yet: two intervals plus the timeout after the last slot.
    assert await tracker.sweep(engine, settings, last + timedelta(seconds=125)) == 0
    assert await state(engine, device) == "up"
    assert await tracker.sweep(engine, settings, last + timedelta(seconds=126)) == 1
    assert await state(engine, device) == "unknown"
    assert told[-1].to_state == "unknown" and told[-1].run_key is None
    assert told[-1].at == last + timedelta(seconds=125)
    # A second sweep changes nothing; a new result counts again.
    assert await tracker.sweep(engine, settings, last + timedelta(seconds=300)) == 0
    await writer.write(check(device, 6, True))
    assert await state(engine, device) == "up"


async def test_the_sweep_reads_only_the_devices_it_may_change_and_misses_none(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    """The database picks the sweep's candidates (storage.health.sweep_candidates): every
    device the sweep changes is one, a device heard from recently is not, and a sweep with
    none reads no health at all."""
    from sqlalchemy import event, update

    from storage.health import sweep_candidates

    writer, tracker, told = tracked
    now = T0 + timedelta(minutes=10)
    # Each device's situation at ``now`` (results at T0 + n minutes; interval 60 s, timeout
    # 5 s: silent from 125 s after its last slot), and whether the sweep changes it.
    fresh = await add_device(engine, interval_seconds=60, timeout_seconds=5)
    await writer.write(check(fresh, 9, True))  # heard 1 min ago
    quiet = await add_device(engine, interval_seconds=60, timeout_seconds=5)
    await writer.write(check(quiet, 7, True))  # 3 min ago: unknown now
    on_the_edge = await add_device(engine, interval_seconds=60, timeout_seconds=5)
    await writer.write(check(on_the_edge, 8, True))  # 2 min ago: 5 s left
    hourly = await add_device(engine)  # no interval: MONITOR_PERIOD_SECONDS (an hour)
    await writer.write(check(hourly, 0, True))  # 10 min ago
    no_row = await add_device(engine, interval_seconds=60)  # never tracked: no health row
    deactivated = await add_device(engine, interval_seconds=60)
    await writer.write(check(deactivated, 9, True))
    reactivated = await add_device(engine, interval_seconds=60, is_active=False)
    await tracker.create(engine, reactivated)  # paused
    asleep = await add_device(engine, interval_seconds=60, is_active=False)
    await tracker.create(engine, asleep)  # paused, and stays so
    devices = Device.__table__  # type: ignore[attr-defined]
    async with engine.begin() as conn:  # is_active changed behind the API's back
        for device, active in ((deactivated, False), (reactivated, True)):
            await conn.execute(
                update(devices).where(devices.c.id == device).values(is_active=active)
            )

    async def candidates_at(at: datetime) -> list[int]:
        async with engine.connect() as conn:
            return await sweep_candidates(
                conn,
                now_s=at.timestamp(),
                default_interval_s=settings.monitor_period_seconds,
                default_grace_s=settings.probe_timeout_seconds,
                paused="paused",
            )

    assert await candidates_at(now) == sorted([quiet, no_row, deactivated, reactivated])
    told.clear()
    assert await tracker.sweep(engine, settings, now) == 3
    assert {(c.device_id, c.to_state) for c in told} == {
        (quiet, "unknown"),
        (deactivated, "paused"),
        (reactivated, "unknown"),
    }
    assert await state(engine, no_row) == "unknown"  # its row made
    assert {d: await state(engine, d) for d in (fresh, on_the_edge, hourly, asleep)} == {
        fresh: "up",
        on_the_edge: "up",
        hourly: "up",
        asleep: "paused",
    }
    # The device on the edge is a candidate once its 125 s are (a second early) near.
    candidates = await candidates_at(now + timedelta(seconds=5))
    assert on_the_edge in candidates and fresh not in candidates

    # Nothing due: one statement, no health document read.
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await tracker.sweep(engine, settings, now + timedelta(seconds=1)) == 0
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) == 1 and "device_health.health" not in seen[0]


async def test_the_leading_scheduler_sweeps_a_silent_device_to_unknown_and_announces_it(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    """The sweep above, on the running scheduler's own schedule: a device whose last
    result is months old (slot T0) turns unknown without anyone calling sweep()."""
    writer, _, _ = tracked
    device = await add_device(engine, interval_seconds=60, timeout_seconds=5)
    await writer.write(check(device, 0, True))
    assert await state(engine, device) == "up"
    nc = await nats.connect(settings.nats_url)
    async with running_worker(settings, worker=False) as broker:
        scheduler = ProbeScheduler(
            settings, broker, engine, nc, installation=broker.installation_id
        )
        scheduler.sweep_every = 0.2  # the leader's 10 s, shortened
        async with collect_events(settings) as events:
            await scheduler.start()
            try:

                def announced() -> list[dict[str, Any]]:
                    return [
                        e["payload"]
                        for e in events
                        if e["type"] == DEVICE_STATE_CHANGED and e["payload"]["device_id"] == device
                    ]

                async def unknown() -> bool:
                    return bool(announced())

                await wait_for(unknown, what="the sweep's device.state_changed")
            finally:
                await scheduler.stop()
                await nc.close()
    [payload] = announced()
    deadline = T0 + timedelta(seconds=2 * 60 + 5)
    assert (payload["from"], payload["to"], payload["run_key"]) == ("up", "unknown", None)
    assert payload["since"] == isoformat_z(deadline)
    assert payload["cause"].startswith("no result for two intervals (120 s)")
    assert await state(engine, device) == "unknown"
    assert await changes(engine, device) == [
        ("unknown", "up", f"probe:{device}:0"),
        ("up", "unknown", None),
    ]
    assert scheduler.sweeps >= 1


async def test_pause_and_resume_follow_is_active(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    writer, tracker, told = tracked
    device = await add_device(engine, failure_threshold=1)
    await writer.write(check(device, 0, False))
    assert await tracker.set_active(engine, device, False, T0 + timedelta(minutes=1)) == 1
    assert await state(engine, device) == "paused"
    await writer.write(check(device, 2, True))  # while paused: does not count
    assert await state(engine, device) == "paused"
    assert await tracker.set_active(engine, device, False, T0 + timedelta(minutes=3)) == 0
    assert await tracker.set_active(engine, device, True, T0 + timedelta(minutes=4)) == 1
    assert await state(engine, device) == "unknown"
    assert [(c.from_state, c.to_state) for c in told] == [
        ("unknown", "down"),
        ("down", "paused"),
        ("paused", "unknown"),
    ]
    # Changed behind the API's back: the sweep pauses it.
    async with session_factory(engine)() as session:
        row = await session.get(Device, device)
        assert row is not None
        row.is_active = False
        await session.commit()
    assert await tracker.sweep(engine, settings, T0 + timedelta(minutes=5)) == 1
    assert await state(engine, device) == "paused"


async def test_two_writers_on_one_sqlite_file_decide_each_change_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Two processes' writers (two engines, two pools) store one device's results at
    once, interleaved and out of order: one down, one up, whatever the interleaving."""
    await concurrent_writers(engine, make_engine(settings))


@pytest.mark.postgres
async def test_two_writers_on_postgresql_decide_each_change_once() -> None:
    """The same on PostgreSQL (READ COMMITTED: the health rows are locked FOR UPDATE)."""
    async with empty_database() as url:
        pg = Settings(DATABASE_URL=url)  # type: ignore[call-arg]
        first = make_engine(pg)
        await init_db(first)
        try:
            await concurrent_writers(first, make_engine(pg))
        finally:
            await first.dispose()


async def concurrent_writers(engine: AsyncEngine, other: AsyncEngine) -> None:
    device = await add_device(engine, failure_threshold=3)
    trackers = [HealthTracker(), HealthTracker()]
    table = CheckResult.__table__  # type: ignore[attr-defined]
    writers = [
        BatchWriter(eng, table, "run_key", flush_ms=1, after_insert=[t.after_insert])
        for eng, t in zip((engine, other), trackers, strict=True)
    ]
    # Slots 0-9 up, 10-29 down, 30-49 up: one writer stores the even slots, the other
    # the odd ones (different rows: neither waits on the other's unique key), two at a
    # time, so that their transactions on the device's health overlap while the results
    # stay within the machine's window.
    plan = [(n, not 10 <= n < 30) for n in range(50)]
    for pair in range(0, 50, 2):
        await asyncio.gather(
            *(
                writers[i].write(check(device, n, up))
                for i, (n, up) in enumerate(plan[pair : pair + 2])
            )
        )
    for w in writers:
        await w.close()
    await other.dispose()
    got = await changes(engine, device)
    assert [(f, t) for f, t, _ in got] == [("unknown", "up"), ("up", "down"), ("down", "up")]
    assert sum(t.changes_announced for t in trackers) == len(got)
    assert await state(engine, device) == "up"
    async with session_factory(engine)() as session:
        health = await session.get(DeviceHealth, device)
    # Every stored result was folded in exactly once: no update was lost.
    assert health is not None and health.revision == len(plan)


async def test_a_failing_device_is_scheduled_at_its_retry_interval_until_down(
    settings: Settings,
    engine: AsyncEngine,
    tracked: tuple[BatchWriter, HealthTracker, list[StateChangeRecord]],
) -> None:
    writer, _, _ = tracked
    device = await add_device(
        engine, interval_seconds=60, retry_interval_seconds=5, failure_threshold=3
    )
    other = await add_device(engine, interval_seconds=60)  # no retry interval: unchanged
    nc = await nats.connect(settings.nats_url)
    async with running_worker(settings, worker=False) as broker:
        scheduler = ProbeScheduler(
            settings, broker, engine, nc, installation=broker.installation_id
        )
        await scheduler.start()
        try:

            def interval() -> int:
                return scheduler.registered[device].interval

            async with collect_events(settings) as events:
                await writer.write(check(device, 0, True))
                assert interval() == 60
                await writer.write(check(device, 1, False))  # up, one failure: retry
                await writer.write(check(other, 1, False))

                async def retrying() -> bool:
                    return interval() == 5

                await wait_for(retrying, what="the retry interval from device.retrying")
                await writer.write(check(device, 2, False))
                await writer.write(check(device, 3, False))  # down: back to the interval

                async def back() -> bool:
                    return interval() == 60

                await wait_for(back, what="the interval again once down")
            flips = [e["payload"] for e in events if e["type"] == DEVICE_RETRYING]
            assert flips == [
                {"id": device, "device_id": device, "retrying": True},
                {"id": device, "device_id": device, "retrying": False},
            ]
            assert scheduler.registered[other].interval == 60
            # A scheduler starting now reads the same from the database.
            assert (await scheduler.load_one(device)) == scheduler.registered[device]
        finally:
            await scheduler.stop()
            await nc.close()


async def statements_of_a_batch(engine: AsyncEngine, devices: int) -> list[str]:
    """The SQL statements (their first words) of one batch of results, one per device,
    for devices that have their health row already, through the writer with both hooks
    (the health hook and the rollups hook, as jobs/worker.py builds it)."""
    from sqlalchemy import event

    from storage.rollups import rollups_hook

    ids = [await add_device(engine) for _ in range(devices)]
    tracker = HealthTracker()
    table = CheckResult.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(
        engine, table, "run_key", flush_ms=20, after_insert=[tracker.after_insert, rollups_hook]
    )
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:3]))

    try:
        # Every device's first result (their health rows made, unknown -> up) ...
        await asyncio.gather(*(writer.write(check(i, 0, True)) for i in ids))
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        # ... then one batch that changes no state: what every later batch costs.
        await asyncio.gather(*(writer.write(check(i, 1, True)) for i in ids))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await writer.close()
    assert writer.batches_written == 2 and writer.rows_written == 2 * devices
    async with engine.connect() as conn:
        revisions = (
            await conn.execute(select(DeviceHealth.__table__.c.revision))  # type: ignore[attr-defined]
        ).scalars()
        assert set(revisions) == {2}  # both results folded into every device's health
    return seen


async def test_a_batch_costs_a_few_statements_whatever_its_size(engine: AsyncEngine) -> None:
    """SQLite: the results' insert (its write lock held from there on), one read of the
    batch's health rows, one executemany of the compare-and-swap, one of the rollups: no
    statement per row, and none to take the write lock the insert already holds."""
    seen = await statements_of_a_batch(engine, 150)
    assert seen == [
        "INSERT INTO check_results",
        "SELECT devices.id, devices.is_active,",
        "UPDATE device_health SET",
        "INSERT INTO check_rollups",
    ]


@pytest.mark.postgres
async def test_a_batch_on_postgresql_reads_its_health_rows_once() -> None:
    """PostgreSQL: the health rows are read once, locked (FOR UPDATE), when every device
    of the batch has its row."""
    async with empty_database() as url:
        pg = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            await init_db(pg)
            seen = await statements_of_a_batch(pg, 150)
        finally:
            await pg.dispose()
    assert seen == [
        "INSERT INTO check_results",
        "SELECT devices.id, devices.is_active,",
        "UPDATE device_health SET",
        "INSERT INTO check_rollups",
    ]


async def test_a_listener_is_told_of_a_batchs_changes_in_one_call(engine: AsyncEngine) -> None:
    """Every change one batch stored reaches each listener in one call, after the commit
    (a batch storing none calls nobody)."""
    ids = [await add_device(engine) for _ in range(40)]
    tracker = HealthTracker()
    calls: list[list[tuple[int, str, str]]] = []

    async def listener(changes: Sequence[StateChangeRecord]) -> None:
        calls.append([(c.device_id, c.from_state, c.to_state) for c in changes])

    tracker.add_listener(listener)
    table = CheckResult.__table__  # type: ignore[attr-defined]
    writer = BatchWriter(engine, table, "run_key", flush_ms=20, after_insert=[tracker.after_insert])
    try:
        await asyncio.gather(*(writer.write(check(i, 0, True)) for i in ids))
        await asyncio.gather(*(writer.write(check(i, 1, True)) for i in ids))  # no change
    finally:
        await writer.close()
    assert writer.batches_written == 2
    assert calls == [[(i, "unknown", "up") for i in ids]]
