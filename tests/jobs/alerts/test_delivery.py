"""Delivery through the real queue (nats-server, JetStream) and a real webhook receiver,
with the in-process worker: one signed POST per state change, retries with the same
Idempotency-Key, one ledger row, suppression, reminders, no channel no trouble."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import pytest

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.alerts.enqueue import enqueue_change, enqueue_change_id
from jobs.alerts.sweep import AlertSweeper
from jobs.metrics import WORK, samples_of
from storage.alert_models import MaintenanceWindow
from storage.db import init_db, make_engine, session_factory
from storage.types import utcnow
from tests.conftest import isolated_env
from tests.helpers import collect_events, running_worker
from tests.jobs.alerts.helpers import (
    add_change,
    add_channel,
    add_device,
    eventually,
    notifications,
)
from tests.jobs.alerts.receiver import receiver


def delivered(status: str) -> float:
    """``fleetprobe_notifications_total{status}`` of this process (the worker is in it)."""
    return samples_of(WORK).get(("fleetprobe_notifications_total", (("status", status),)), 0.0)


@pytest.fixture
def alert_settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    env = isolated_env(nats_server.url, tmp_path, ALERT_RETRY_DELAYS_SECONDS="0.2,0.2,0.2,0.2")
    return Settings(**env)  # type: ignore[arg-type]


async def test_each_state_change_reaches_the_receiver_once_signed(alert_settings: Settings) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    sent_before = delivered("sent")
    with receiver() as rx:
        channel = await add_channel(engine, rx.url, secret="s3cret")
        device = await add_device(engine, name="edge-1")
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            down = await add_change(engine, device, 1, "up", "down")
            up = await add_change(engine, device, 2, "down", "up")
            for change in (down, up, down):  # the second enqueue of `down` adds nothing
                await enqueue_change(engine, broker, change)
            await enqueue_change_id(engine, broker, up.id)
            await eventually(lambda: _sent(events) >= 2, timeout=20, what="two sent events")
            await asyncio.sleep(0.5)  # a duplicate would land now
        assert rx.count() == 2
        assert delivered("sent") == sent_before + 2
        bodies = [r.body for r in rx.requests]
        assert sorted(b["state_change"]["to"] for b in bodies) == ["down", "up"]
        for got in rx.requests:
            digest = hmac.new(b"s3cret", got.raw, hashlib.sha256).hexdigest()
            assert got.headers["x-fleetprobe-signature"] == f"sha256={digest}"
            change_id = got.body["state_change"]["id"]
            assert got.headers["idempotency-key"] == f"notify:{change_id}:{channel}"
            assert got.body["device"]["name"] == "edge-1"
            # the device's page on the dashboard, for the person reading the alert
            web = f"{alert_settings.web_host}:{alert_settings.web_port}"
            assert got.body["link"] == f"http://{web}/#/devices/{device}"
        rows = await notifications(engine)
        assert [(r.state_change_id, r.status, r.attempts, r.response_code) for r in rows] == [
            (down.id, "sent", 1, 200),
            (up.id, "sent", 1, 200),
        ]
        sent = [e["payload"] for e in events if e["type"] == "notification.sent"]
        assert sorted(p["state_change_id"] for p in sent) == [down.id, up.id]
        assert {p["channel_id"] for p in sent} == {channel}
    await engine.dispose()


def _sent(events: list[dict[str, object]]) -> int:
    return sum(1 for e in events if e["type"] == "notification.sent")


async def test_a_receiver_failing_twice_gets_three_attempts_with_one_key_and_one_row(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    with receiver(plan=[500, 500]) as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine)
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            change = await add_change(engine, device, 1, "up", "down")
            await enqueue_change(engine, broker, change)
            await eventually(lambda: _sent(events) >= 1, timeout=20, what="sent")
            await asyncio.sleep(0.5)
        assert rx.count() == 3
        assert {r.headers["idempotency-key"] for r in rx.requests} == {f"notify:{change.id}:1"}
        (row,) = await notifications(engine)
        assert (row.status, row.attempts, row.response_code, row.error) == ("sent", 3, 200, None)
        assert row.sent_at is not None
    await engine.dispose()


async def test_a_receiver_that_never_answers_ok_is_recorded_failed_after_the_last_try(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    failed_before = delivered("failed")
    with receiver(plan=[502] * 10) as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine)
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            await enqueue_change(engine, broker, await add_change(engine, device, 1, "up", "down"))
            await eventually(
                lambda: any(e["type"] == "notification.failed" for e in events),
                timeout=20,
                what="failed",
            )
        assert rx.count() == 5  # 1 + len(ALERT_RETRY_DELAYS_SECONDS)
        assert delivered("failed") == failed_before + 1  # the notification, not its attempts
        (row,) = await notifications(engine)
        assert (row.status, row.attempts, row.response_code, row.error) == (
            "failed", 5, 502, "HTTP 502",
        )  # fmt: skip
    await engine.dispose()


async def test_no_channel_means_nothing_sent_nothing_recorded(alert_settings: Settings) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    device = await add_device(engine)
    async with running_worker(alert_settings, worker=False) as broker:
        result = await enqueue_change(
            engine, broker, await add_change(engine, device, 1, "up", "down")
        )
    assert result.queued == [] and result.suppressed == []
    assert await notifications(engine) == []
    await engine.dispose()


async def test_snooze_and_maintenance_suppress_and_the_ledger_says_so(
    alert_settings: Settings,
) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    with receiver() as rx:
        await add_channel(engine, rx.url)
        now = utcnow()
        snoozed = await add_device(engine, name="snoozed", snoozed_until=now + timedelta(hours=1))
        in_window = await add_device(engine, name="patched")
        async with session_factory(engine)() as session:
            window = MaintenanceWindow(
                name="w",
                device_ids=[in_window],
                start=now - timedelta(minutes=1),
                duration_seconds=3600,
                mode="suppress_alerts",
            )
            session.add(window)
            await session.commit()
        async with running_worker(alert_settings) as broker:
            a = await enqueue_change(
                engine, broker, await add_change(engine, snoozed, 1, "up", "down")
            )
            b = await enqueue_change(
                engine, broker, await add_change(engine, in_window, 1, "up", "down")
            )
            await asyncio.sleep(1.0)  # a delivery, were one queued, would land now
        assert a.reason and a.reason.startswith("snoozed until")
        assert b.reason and b.reason.startswith("maintenance window")
        assert rx.count() == 0
        rows = await notifications(engine)
        assert [(r.device_id, r.status) for r in rows] == [
            (snoozed, "suppressed"),
            (in_window, "suppressed"),
        ]
    await engine.dispose()


async def test_a_reminder_repeats_while_the_device_stays_down(alert_settings: Settings) -> None:
    engine = make_engine(alert_settings)
    await init_db(engine)
    with receiver() as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine, reminder_every_minutes=5)
        start = utcnow() - timedelta(minutes=1)
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            change = await add_change(engine, device, 1, "up", "down", at=start)
            await enqueue_change(engine, broker, change)
            sweeper = AlertSweeper(alert_settings, broker, engine, events=None)
            assert await sweeper.remind(start + timedelta(minutes=4)) == 0  # not yet
            assert await sweeper.remind(start + timedelta(minutes=5, seconds=1)) == 1
            assert await sweeper.remind(start + timedelta(minutes=6)) == 0  # again: no repeat
            assert await sweeper.remind(start + timedelta(minutes=10)) == 1
            await eventually(lambda: _sent(events) >= 3, timeout=20, what="three sent")
            await asyncio.sleep(0.5)
        assert rx.count() == 3
        keys = [r.headers["idempotency-key"] for r in rx.requests]
        assert sorted(keys) == [
            f"notify:{change.id}:1",
            f"notify:{change.id}:1:1",
            f"notify:{change.id}:1:2",
        ]
        titles = sorted(r.body["title"] for r in rx.requests)
        assert titles[0].startswith("[reminder 1]") and titles[1].startswith("[reminder 2]")
        rows = await notifications(engine)
        assert [(r.reminder, r.status) for r in rows] == [(0, "sent"), (1, "sent"), (2, "sent")]
        # Once it is back up, no more reminders.
        async with running_worker(alert_settings, worker=False) as broker:
            await add_change(engine, device, 2, "down", "up")
            sweeper = AlertSweeper(alert_settings, broker, engine, events=None)
            assert await sweeper.remind(start + timedelta(minutes=30)) == 0
    await engine.dispose()


async def test_a_retry_wait_longer_than_a_task_may_hold_is_handed_on_and_still_sent(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    # ack_wait 6 s and 2 s attempts: a task holds a wait 2 s at most; the 3 s backoff is
    # handed on to a new message once, then the second attempt goes out.
    env = isolated_env(
        nats_server.url, tmp_path, PROBE_MAX_TIMEOUT_SECONDS="2", PROBE_TIMEOUT_SECONDS="2",
        NATS_TIMEOUT="1", ACK_WAIT_SECONDS="6", ALERT_TIMEOUT_SECONDS="2",
        ALERT_RETRY_DELAYS_SECONDS="3",
    )  # fmt: skip
    settings = Settings(**env)  # type: ignore[arg-type]
    assert settings.alert_hold_seconds == 2.0
    engine = make_engine(settings)
    await init_db(engine)
    with receiver(plan=[500]) as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine)
        async with collect_events(settings) as events, running_worker(settings) as broker:
            await enqueue_change(engine, broker, await add_change(engine, device, 1, "up", "down"))
            await eventually(lambda: _sent(events) >= 1, timeout=30, what="sent")
        assert rx.count() == 2
        (row,) = await notifications(engine)
        assert (row.status, row.attempts, row.response_code) == ("sent", 2, 200)
    await engine.dispose()


async def test_the_leader_announces_windows_opening_and_closing(alert_settings: Settings) -> None:
    from jobs.events import EventPublisher
    from jobs.scheduling.calendar import load_windows

    engine = make_engine(alert_settings)
    await init_db(engine)
    now = utcnow()
    async with session_factory(engine)() as session:
        start = now + timedelta(minutes=1)
        window_row = MaintenanceWindow(
            name="soon", device_ids=[4, 2], start=start, duration_seconds=600, mode="skip_probes"
        )
        session.add(window_row)
        await session.commit()
    windows = await load_windows(engine)
    async with (
        collect_events(alert_settings) as events,
        running_worker(alert_settings, worker=False) as broker,
    ):
        import nats

        nc = await nats.connect(alert_settings.nats_url)
        assert broker.installation_id is not None
        publisher = EventPublisher(
            nc, alert_settings.events_subject, "test-leader", broker.installation_id
        )
        sweeper = AlertSweeper(alert_settings, broker, engine, publisher)
        assert await sweeper.announce_windows(now, windows) == (set(), set())  # first look
        opened = await sweeper.announce_windows(now + timedelta(minutes=2), windows)
        closed = await sweeper.announce_windows(now + timedelta(minutes=20), windows)
        await nc.flush()
        await eventually(lambda: len(events) >= 2, what="two events")
        await nc.close()
    (window,) = windows
    assert opened == ({window.id}, set()) and closed == (set(), {window.id})
    assert [(e["type"], e["payload"]) for e in events] == [
        ("maintenance.started", {"maintenance_id": window.id, "device_ids": [2, 4]}),
        ("maintenance.ended", {"maintenance_id": window.id, "device_ids": [2, 4]}),
    ]
    await engine.dispose()


async def test_a_pending_notification_whose_message_was_lost_is_queued_again(
    alert_settings: Settings,
) -> None:
    from storage.alert_repo import record_notifications

    engine = make_engine(alert_settings)
    await init_db(engine)
    with receiver() as rx:
        channel = await add_channel(engine, rx.url)
        device = await add_device(engine)
        change = await add_change(engine, device, 1, "up", "down")
        # Recorded, but its kick never happened (NATS was down at that moment).
        long_ago = utcnow() - timedelta(hours=1)
        await record_notifications(engine, [{
            "device_id": device, "channel_id": channel, "state_change_id": change.id,
            "reminder": 0, "status": "pending", "created_at": long_ago, "updated_at": long_ago,
        }])  # fmt: skip
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            sweeper = AlertSweeper(alert_settings, broker, engine, events=None)
            assert await sweeper.requeue_stale(utcnow()) == 1
            assert await sweeper.requeue_stale(utcnow()) == 0  # touched: not stale any more
            await eventually(lambda: _sent(events) >= 1, what="sent")
        assert rx.count() == 1
        (row,) = await notifications(engine)
        assert (row.status, row.attempts) == ("sent", 1)
    await engine.dispose()


async def test_the_health_hooks_listener_enqueues_a_stored_change(
    alert_settings: Settings,
) -> None:
    from jobs.alerts.enqueue import change_listener
    from storage.models import StateChange

    engine = make_engine(alert_settings)
    await init_db(engine)
    with receiver() as rx:
        await add_channel(engine, rx.url)
        device = await add_device(engine)
        record = await add_change(engine, device, 1, "up", "down")
        async with session_factory(engine)() as session:
            row = await session.get(StateChange, record.id)
        async with (
            collect_events(alert_settings) as events,
            running_worker(alert_settings) as broker,
        ):
            await change_listener(engine, broker)([row])  # the row itself, as W2's hook has it
            await eventually(lambda: _sent(events) >= 1, what="sent")
        assert rx.requests[0].body["state_change"]["id"] == record.id
    await engine.dispose()


async def test_the_sweep_reminds_each_interval_once_and_only_while_leading(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    # The clock runs minutes ahead of the rows' real timestamps: a long retry delay keeps
    # the sweep from taking a fresh pending row for one whose message was lost.
    env = isolated_env(
        nats_server.url, tmp_path, ALERT_SWEEP_SECONDS="0.05", ALERT_RETRY_DELAYS_SECONDS="3600"
    )
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    start = utcnow()
    now = [start]
    leading = [False]
    asked = [0]  # the sweeper's loops: it asks whether it leads once each

    def is_leader() -> bool:
        asked[0] += 1
        return leading[0]

    async def a_few_sweeps() -> None:
        target = asked[0] + 4
        await eventually(lambda: asked[0] >= target, what="four more sweeps")

    with receiver() as rx:
        channel = await add_channel(engine, rx.url)
        device = await add_device(engine, reminder_every_minutes=5)
        async with (
            collect_events(settings) as events,
            running_worker(settings) as broker,
        ):
            change = await add_change(engine, device, 1, "up", "down", at=start)
            await enqueue_change(engine, broker, change)
            await eventually(lambda: _sent(events) >= 1, what="the change sent")
            sweeper = AlertSweeper(
                settings, broker, engine, events=None, is_leader=is_leader, clock=lambda: now[0]
            )
            sweeper.start()
            try:
                now[0] = start + timedelta(minutes=6)  # reminder 1 due, but not leading
                await a_few_sweeps()
                assert rx.count() == 1
                leading[0] = True
                await eventually(lambda: rx.count() >= 2, what="reminder 1")
                await a_few_sweeps()  # every sweep sees reminder 1 due: sent once
                now[0] = start + timedelta(minutes=11)
                await eventually(lambda: rx.count() >= 3, what="reminder 2")
                await a_few_sweeps()
                leading[0] = False
                now[0] = start + timedelta(minutes=16)  # reminder 3 due, no longer leading
                await a_few_sweeps()
                await eventually(lambda: _sent(events) >= 3, what="three sent")
            finally:
                await sweeper.stop()
        keys = [r.headers["idempotency-key"] for r in rx.requests]
        key = f"notify:{change.id}:{channel}"
        assert keys == [key, f"{key}:1", f"{key}:2"]
        rows = await notifications(engine)
        assert [(r.reminder, r.status) for r in rows] == [(0, "sent"), (1, "sent"), (2, "sent")]
    await engine.dispose()
