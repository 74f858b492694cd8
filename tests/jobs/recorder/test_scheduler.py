"""Scheduled recorder commands: APScheduler jobs from the ``recorder_schedules`` table,
kicked onto the queue, run by the in-process worker, one result per slot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import nats
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.settings import Settings
from jobs.events import encode_event
from jobs.recorder.scheduler import RecorderScheduler
from jobs.recorder.simulator import RecorderSimulator
from jobs.recorder.slots import slot_key
from storage.db import session_factory
from storage.installation import installation_id
from storage.recorder_models import CommandResult, RecorderSchedule
from tests.helpers import running_worker, wait_for
from tests.recorder_helpers import running_simulator


async def add_schedule(engine: AsyncEngine, **fields: Any) -> RecorderSchedule:
    async with session_factory(engine)() as session:
        row = RecorderSchedule(**fields)
        session.add(row)
        await session.commit()
        await session.refresh(row)
        return row


async def delete_schedule(engine: AsyncEngine, schedule_id: int) -> None:
    async with session_factory(engine)() as session:
        row = await session.get(RecorderSchedule, schedule_id)
        assert row is not None
        await session.delete(row)
        await session.commit()


async def results(engine: AsyncEngine) -> list[CommandResult]:
    async with session_factory(engine)() as session:
        stmt = select(CommandResult).order_by(col(CommandResult.slot_at))
        return list((await session.exec(stmt)).all())


@asynccontextmanager
async def running_scheduler(
    settings: Settings, broker: Any, engine: AsyncEngine
) -> AsyncIterator[RecorderScheduler]:
    nc = await nats.connect(settings.nats_url)
    scheduler = RecorderScheduler(
        settings, broker, engine, nc, installation=await installation_id(engine)
    )
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await nc.close()


async def publish(settings: Settings, type_: str, payload: dict[str, Any]) -> None:
    nc = await nats.connect(settings.nats_url)
    await nc.publish(settings.events_subject, encode_event(type_, payload))
    await nc.close()


def registered(scheduler: RecorderScheduler, *ids: int | None) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return set(scheduler.registered) == set(ids)

    return check


async def settled(engine: AsyncEngine, simulator: RecorderSimulator) -> None:
    """Wait until every command the recorder answered has its stored row."""

    async def caught_up() -> bool:
        return len(await results(engine)) == simulator.handled

    await wait_for(caught_up, what="results for every answered command")


async def test_a_one_second_schedule_fires_through_the_worker(
    settings: Settings, engine: AsyncEngine
) -> None:
    schedule = await add_schedule(engine, task_id="cam1", cmd="status", interval_seconds=1)
    await add_schedule(engine, task_id="cam1", cmd="start", interval_seconds=1, is_active=False)
    async with running_simulator(settings) as simulator, running_worker(settings) as broker:
        async with running_scheduler(settings, broker, engine) as scheduler:
            assert set(scheduler.registered) == {schedule.id}

            async def fired_three_times() -> bool:
                return len(await results(engine)) >= 3

            await wait_for(fired_three_times, timeout=20, what="three scheduled commands")
        await settled(engine, simulator)
    rows = await results(engine)
    assert all(r.schedule_id == schedule.id and r.source == "schedule" for r in rows)
    assert all(r.task_id == "cam1" and r.cmd == "status" for r in rows)
    assert all(r.msg_status == "success" and r.app_status == "stopped" for r in rows)
    assert all(r.slot_at is not None and r.slot_at.microsecond == 0 for r in rows)
    assert all(r.run_key == slot_key(schedule.id, r.slot_at) for r in rows)  # type: ignore[arg-type]
    assert len({r.slot_at for r in rows}) == len(rows)


async def test_schedules_are_picked_up_and_dropped_without_a_restart(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.model_copy(update={"scheduler_resync_seconds": 0.5})
    async with (
        running_worker(settings, worker=False) as broker,
        running_scheduler(settings, broker, engine) as scheduler,
    ):
        assert scheduler.registered == {}
        # announced by the API: picked up from the event
        first = await add_schedule(
            engine, task_id="cam2", cmd="start", cron="0 8 * * 1-5", payload={"segment_time": 600.0}
        )
        assert first.id is not None
        await publish(settings, "recorder.schedule.created", {"id": first.id})
        await wait_for(registered(scheduler, first.id), what="the created schedule")
        next_run = scheduler.next_run(first.id)
        assert next_run is not None and next_run.hour == 8 and next_run.weekday() < 5

        # written behind the API's back: picked up by the periodic resync
        second = await add_schedule(engine, task_id="cam2", cmd="stop", cron="0 18 * * 1-5")
        await wait_for(registered(scheduler, first.id, second.id), what="the resync")

        await delete_schedule(engine, first.id)
        await publish(settings, "recorder.schedule.deleted", {"id": first.id})
        await wait_for(registered(scheduler, second.id), what="the deleted schedule to go")
        assert scheduler.next_run(first.id) is None


async def test_two_schedulers_send_each_slot_once(settings: Settings, engine: AsyncEngine) -> None:
    schedule = await add_schedule(engine, task_id="cam3", cmd="status", interval_seconds=1)
    async with running_simulator(settings) as simulator, running_worker(settings) as broker:
        async with (
            running_scheduler(settings, broker, engine) as one,
            running_scheduler(settings, broker, engine) as two,
        ):

            async def both_kicked_three_slots() -> bool:
                return one.kicks >= 3 and two.kicks >= 3

            await wait_for(both_kicked_three_slots, timeout=20, what="kicks from both")
        await settled(engine, simulator)
    rows = await results(engine)
    assert len(rows) >= 3
    assert all(r.schedule_id == schedule.id for r in rows)
    # every slot was kicked by both; JetStream kept one message per slot
    assert len({r.slot_at for r in rows}) == len(rows)
    assert one.kicks + two.kicks > len(rows)


async def test_a_scheduler_that_does_not_lead_kicks_nothing(
    settings: Settings, engine: AsyncEngine
) -> None:
    schedule = await add_schedule(engine, task_id="cam4", cmd="status", interval_seconds=60)
    assert schedule.id is not None
    leading = False
    async with running_worker(settings, worker=False) as broker:
        now = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)
        scheduler = RecorderScheduler(
            settings, broker, engine, clock=lambda: now, is_leader=lambda: leading
        )
        await scheduler.start()
        try:
            await scheduler.fire(schedule.id)
            assert scheduler.kicks == 0
            leading = True
            await scheduler.fire(schedule.id)
            await scheduler.fire(schedule.id)  # same slot: one message (Nats-Msg-Id)
            assert scheduler.kicks == 2
        finally:
            await scheduler.stop()
        info = await broker.js.stream_info(settings.jobs_stream)
        assert info.state.messages == 1


async def test_a_skip_probes_window_holds_back_its_recorder_devices_commands(
    settings: Settings, engine: AsyncEngine
) -> None:
    from datetime import timedelta

    from storage.alert_models import MaintenanceWindow
    from storage.models import Device
    from storage.types import utcnow

    now = utcnow()
    async with session_factory(engine)() as session:
        cam = Device(name="cam1", address="recorder://cam1")
        other = Device(name="cam2", address="recorder://cam2")
        session.add_all([cam, other])
        await session.commit()
        start = now - timedelta(minutes=1)
        assert cam.id is not None
        window = MaintenanceWindow(
            name="w", device_ids=[cam.id], mode="skip_probes", start=start, duration_seconds=600
        )
        session.add(window)
        await session.commit()
    held = await add_schedule(engine, task_id="cam1", cmd="status", interval_seconds=1)
    free = await add_schedule(engine, task_id="cam2", cmd="status", interval_seconds=1)
    async with running_worker(settings, worker=False) as broker:
        scheduler = RecorderScheduler(settings, broker, engine)
        assert await scheduler.in_maintenance("cam1", now)
        assert not await scheduler.in_maintenance("cam2", now)
        assert not await scheduler.in_maintenance("cam1", now + timedelta(hours=1))
        scheduler.registered.update({held.id: spec_of(held), free.id: spec_of(free)})  # type: ignore[dict-item]
        from jobs.recorder.triggers import build_trigger

        for row in (held, free):
            scheduler.triggers[row.id] = build_trigger(None, 1)  # type: ignore[index]
            await scheduler.fire(row.id)  # type: ignore[arg-type]
    assert (scheduler.held_back, scheduler.kicks) == (1, 1)


def spec_of(row: RecorderSchedule) -> Any:
    from jobs.recorder.plan import spec_for

    return spec_for(row)
