"""What a maintenance window kept quiet is told once it is over: a device that went down
inside a ``suppress_alerts`` window and is still down at its end gets one "still down
after maintenance" notification per channel, from the leader's sweep, however often and
by however many schedulers the sweep runs; one that recovered inside the window gets
none, nor one snoozed (until its snooze ends).  Real nats-server, the in-process worker,
a real webhook receiver."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.alerts.enqueue import enqueue_change
from jobs.alerts.sweep import AlertSweeper
from jobs.probe.scheduler import ProbeScheduler
from storage.alert_models import MaintenanceWindow
from storage.db import init_db, make_engine, session_factory
from storage.models import Device, DeviceHealth, StateChange
from storage.types import utcnow
from tests import targets
from tests.conftest import isolated_env
from tests.helpers import collect_events, running_worker, wait_for
from tests.jobs.alerts.helpers import (
    add_change,
    add_channel,
    add_device,
    eventually,
    notifications,
)
from tests.jobs.alerts.receiver import receiver


@pytest.fixture
def alert_settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    # The sweeps' clock runs minutes ahead of the rows' real timestamps: a long retry
    # delay keeps a sweep from taking a fresh pending row for one whose message was lost.
    env = isolated_env(nats_server.url, tmp_path, ALERT_RETRY_DELAYS_SECONDS="3600")
    return Settings(**env)  # type: ignore[arg-type]


def _sent(events: list[dict[str, object]]) -> int:
    return sum(1 for e in events if e["type"] == "notification.sent")


async def _add_window(engine: AsyncEngine, device_ids: list[int], **fields: Any) -> int:
    async with session_factory(engine)() as session:
        window = MaintenanceWindow(
            name="patch", device_ids=device_ids, mode="suppress_alerts", **fields
        )
        session.add(window)
        await session.commit()
        assert window.id is not None
        return window.id


async def _snooze(engine: AsyncEngine, device_id: int, until: datetime | None) -> None:
    async with session_factory(engine)() as session:
        device = await session.get(Device, device_id)
        assert device is not None
        device.snoozed_until = until
        session.add(device)
        await session.commit()


async def test_a_device_still_down_when_its_window_ends_is_told_once(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    t0 = utcnow()
    with receiver() as rx:
        channel = await add_channel(engine, rx.url)
        stuck = await add_device(engine, name="stuck")
        recovered = await add_device(engine, name="recovered")
        snoozed = await add_device(engine, name="snoozed")
        window = await _add_window(
            engine, [stuck, recovered, snoozed], start=t0 - timedelta(minutes=1),
            duration_seconds=600,
        )  # fmt: skip
        ended = t0 + timedelta(minutes=9)
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            down = await add_change(engine, stuck, 1, "up", "down", at=t0)
            changes = [
                down,
                await add_change(engine, recovered, 1, "up", "down", at=t0),
                await add_change(engine, recovered, 2, "down", "up", at=t0),
                await add_change(engine, snoozed, 1, "up", "down", at=t0),
            ]
            for change in changes:  # each held back by the window
                assert (await enqueue_change(engine, broker, change)).reason is not None
            await _snooze(engine, snoozed, t0 + timedelta(days=1))  # snoozed in the window
            leader = AlertSweeper(alert_settings, broker, engine, events=None)
            other = AlertSweeper(alert_settings, broker, engine, events=None)  # 2nd scheduler
            await leader.sweep(t0 + timedelta(minutes=5))  # in the window: nothing
            assert await leader.after_maintenance(t0 + timedelta(minutes=5)) == (set(), 0)
            await leader.sweep(ended - timedelta(seconds=1))
            # The window is over: two schedulers at once, then sweep after sweep.
            told = await asyncio.gather(
                leader.after_maintenance(ended), other.after_maintenance(ended)
            )
            assert {c for changed, _ in told for c in changed} == {down.id}
            assert sum(rows for _, rows in told) == 1
            for minutes in (9.5, 10, 12, 30):
                await leader.sweep(t0 + timedelta(minutes=minutes))
                await other.sweep(t0 + timedelta(minutes=minutes))
            assert await other.after_maintenance(t0 + timedelta(minutes=31)) == (set(), 0)
            await eventually(lambda: _sent(events) >= 1, what="the message after the window")
            await asyncio.sleep(0.5)  # a duplicate would land now
            assert rx.count() == 1
            (got,) = rx.requests
            assert got.body["event"] == "after_maintenance"
            assert got.body["title"] == "stuck is still DOWN after maintenance"
            assert got.body["text"].startswith("stuck (http://127.0.0.1:9/) is still down after")
            assert got.body["state_change"]["id"] == down.id and got.body["reminder"] == 1
            assert got.headers["idempotency-key"] == f"notify:{down.id}:{channel}:1"
            rows = await notifications(engine)
            held = f"maintenance window {window}"
            assert [(r.state_change_id, r.reminder, r.status, r.reason) for r in rows] == [
                (down.id, 0, "suppressed", held),  # the history stays
                (changes[1].id, 0, "suppressed", held),
                (changes[2].id, 0, "suppressed", held),
                (changes[3].id, 0, "suppressed", held),
                (down.id, 1, "sent", f"after {held}"),
            ]  # fmt: skip

            # A snooze holds it back; once the snooze ends, the sweep tells it, once.
            await _snooze(engine, snoozed, None)
            for minutes in (32, 33):
                await leader.sweep(t0 + timedelta(minutes=minutes))
            await eventually(lambda: _sent(events) >= 2, what="the snoozed device's message")
            await asyncio.sleep(0.5)
        assert rx.count() == 2
        assert rx.requests[1].body["title"] == "snoozed is still DOWN after maintenance"
        rows = await notifications(engine)
        assert [(r.device_id, r.reminder, r.status) for r in rows if r.reminder] == [
            (stuck, 1, "sent"), (snoozed, 1, "sent"),
        ]  # fmt: skip
    await engine.dispose()


async def test_it_follows_the_devices_policy_as_it_is_when_the_window_ends(
    alert_settings: Settings,
) -> None:
    """degraded when followed; the device's own channels; a notify_on that dropped down
    since the change: nothing."""
    engine = make_engine(alert_settings)
    await init_db(engine)
    t0 = utcnow()
    with receiver() as rx, receiver() as own:
        await add_channel(engine, rx.url)  # the default channel
        mine = await add_channel(engine, own.url, name="own", is_default=False)
        slow = await add_device(engine, name="slow", notify_on=["down", "up", "degraded"])
        routed = await add_device(engine, name="routed", channel_ids=[mine])
        muted = await add_device(engine, name="muted")
        await _add_window(
            engine, [slow, routed, muted], start=t0 - timedelta(minutes=1), duration_seconds=90
        )
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            for device, to_state in ((slow, "degraded"), (routed, "down"), (muted, "down")):
                change = await add_change(engine, device, 1, "up", to_state, at=t0)
                assert (await enqueue_change(engine, broker, change)).reason is not None
            async with session_factory(engine)() as session:
                row = await session.get(Device, muted)
                assert row is not None
                row.notify_on = ["up"]
                session.add(row)
                await session.commit()
            sweeper = AlertSweeper(alert_settings, broker, engine, events=None)
            for minutes in (1, 2, 3):
                await sweeper.sweep(t0 + timedelta(minutes=minutes))
            await eventually(lambda: _sent(events) >= 2, what="two messages")
            await asyncio.sleep(0.5)
        assert [r.body["title"] for r in rx.requests] == [
            "slow is still DEGRADED after maintenance"
        ]
        assert [r.body["title"] for r in own.requests] == ["routed is still DOWN after maintenance"]
        rows = await notifications(engine)
        assert sorted((r.device_id, r.channel_id, r.reminder, r.status) for r in rows) == [
            (slow, 1, 0, "suppressed"), (slow, 1, 1, "sent"),
            (routed, mine, 0, "suppressed"), (routed, mine, 1, "sent"),
            (muted, 1, 0, "suppressed"),
        ]  # fmt: skip
    await engine.dispose()


async def test_reminders_go_on_counting_after_the_message_after_maintenance(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    t0 = utcnow()
    with receiver() as rx:
        channel = await add_channel(engine, rx.url)
        device = await add_device(engine, name="core", reminder_every_minutes=5)
        other_device = await add_device(engine, name="other")
        # Two windows: the device's ends at t0 + 11 min, one over both later (t0 + 40 min).
        window = await _add_window(
            engine, [device], start=t0 - timedelta(minutes=1), duration_seconds=12 * 60
        )
        later = await _add_window(
            engine, [device, other_device], start=t0 + timedelta(minutes=40),
            duration_seconds=600,
        )  # fmt: skip
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            down = await add_change(engine, device, 1, "up", "down", at=t0)
            await enqueue_change(engine, broker, down)
            sweeper = AlertSweeper(alert_settings, broker, engine, events=None)
            for minutes in (5.5, 10.5):  # reminders 1 and 2, held back by the window
                await sweeper.sweep(t0 + timedelta(minutes=minutes))
            await sweeper.sweep(t0 + timedelta(minutes=11.5))  # over: "after maintenance"
            for minutes in (15.5, 16):  # reminder 3 due: it is the row just sent
                await sweeper.sweep(t0 + timedelta(minutes=minutes))
            await sweeper.sweep(t0 + timedelta(minutes=20.5))  # reminder 4
            await sweeper.sweep(t0 + timedelta(minutes=45.5))  # in the second window: held
            # After it: told already, so no second "after maintenance"; reminder 10 is due.
            await sweeper.sweep(t0 + timedelta(minutes=51))
            await eventually(lambda: _sent(events) >= 3, what="three messages")
            await asyncio.sleep(0.5)
        key = f"notify:{down.id}:{channel}"
        assert [r.headers["idempotency-key"] for r in rx.requests] == [
            f"{key}:3", f"{key}:4", f"{key}:10",
        ]  # fmt: skip
        assert [r.body["title"] for r in rx.requests] == [
            "core is still DOWN after maintenance",
            "[reminder 4] core is DOWN",
            "[reminder 10] core is DOWN",
        ]
        rows = await notifications(engine)
        assert [(r.reminder, r.status, r.reason) for r in rows] == [
            (0, "suppressed", f"maintenance window {window}"),
            (1, "suppressed", f"maintenance window {window}"),
            (2, "suppressed", f"maintenance window {window}"),
            (3, "sent", f"after maintenance window {window}"),
            (4, "sent", None),
            (9, "suppressed", f"maintenance window {later}"),
            (10, "sent", None),
        ]
    await engine.dispose()


async def test_a_window_ended_while_the_device_is_down_sends_one_webhook_through_the_pipeline(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    """The probe schedule, the worker, the health hook, the listener and the leader's own
    sweep loop: the window's down is held back; the window ended early by its operator,
    the device still down, one webhook says so once this process leads (none before);
    its recovery is sent as usual."""
    env = isolated_env(nats_server.url, tmp_path, ALERT_SWEEP_SECONDS="0.2")
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    sessions = session_factory(engine)
    switch = uuid.uuid4().hex[:8]
    sweeps = [0]
    leading = [True]

    def is_leader() -> bool:
        sweeps[0] += 1
        return leading[0]

    async def state_is(wanted: str) -> bool:
        async with sessions() as session:
            row = await session.get(DeviceHealth, device)
        return row is not None and row.state == wanted

    with receiver() as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine, name="patched", address=f"{http_target}/switch/{switch}",
                                  interval_seconds=1, timeout_seconds=2,
                                  failure_threshold=1, success_threshold=1)  # fmt: skip
        window = await _add_window(
            engine, [device], start=utcnow() - timedelta(minutes=1), duration_seconds=3600
        )
        async with running_worker(settings) as broker:
            scheduler = ProbeScheduler(settings, broker, engine)
            sweeper = AlertSweeper(settings, broker, engine, events=None, is_leader=is_leader)
            await scheduler.start()
            sweeper.start()
            try:
                await wait_for(lambda: state_is("up"), timeout=30, what="first up")
                targets.switches[switch] = 500
                await wait_for(lambda: state_is("down"), timeout=30, what="down in the window")
                seen = sweeps[0]
                await eventually(lambda: sweeps[0] >= seen + 3, what="sweeps in the window")
                assert rx.count() == 0
                leading[0] = False  # a follower does not tell
                async with sessions() as session:  # the operator ends the window now
                    row = await session.get(MaintenanceWindow, window)
                    assert row is not None and row.start is not None
                    row.duration_seconds = int((utcnow() - row.start).total_seconds())
                    session.add(row)
                    await session.commit()
                seen = sweeps[0]
                await eventually(lambda: sweeps[0] >= seen + 5, what="loops not leading")
                assert rx.count() == 0
                leading[0] = True
                await eventually(lambda: rx.count() >= 1, timeout=30, what="the webhook")
                seen = sweeps[0]
                await eventually(lambda: sweeps[0] >= seen + 5, what="more sweeps")
                assert rx.count() == 1
                targets.switches[switch] = 200
                await eventually(lambda: rx.count() >= 2, timeout=30, what="the recovery")
                seen = sweeps[0]
                await eventually(lambda: sweeps[0] >= seen + 3, what="sweeps after it")
            finally:
                await sweeper.stop()
                await scheduler.stop()
                targets.switches.pop(switch, None)

        async with sessions() as session:
            stmt = select(StateChange).where(StateChange.device_id == device)
            changes = list((await session.exec(stmt.order_by(col(StateChange.revision)))).all())
        assert [(c.from_state, c.to_state) for c in changes] == [
            ("unknown", "up"), ("up", "down"), ("down", "up"),
        ]  # fmt: skip
        down, up = changes[1], changes[2]
        assert [(r.body["event"], r.body["title"]) for r in rx.requests] == [
            ("after_maintenance", "patched is still DOWN after maintenance"),
            ("state_change", "patched is UP"),
        ]
        assert rx.requests[0].body["state_change"]["id"] == down.id
        rows = await notifications(engine)
        assert [(r.state_change_id, r.reminder, r.status) for r in rows] == [
            (down.id, 0, "suppressed"), (down.id, 1, "sent"), (up.id, 0, "sent"),
        ]  # fmt: skip
    await engine.dispose()
