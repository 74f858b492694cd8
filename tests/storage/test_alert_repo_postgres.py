"""The alert tables on PostgreSQL: channels, maintenance windows and the notifications
ledger (``storage.alert_repo``), its unique key under concurrent writers from two pools,
and a redelivered notification sent and recorded once through the real queue.  Skipped
without a server at TEST_POSTGRES_URL, required under CI=true."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.alerts.enqueue import enqueue_change
from jobs.alerts.job import NotifyJob
from jobs.alerts.task import AlertParts, deliver
from jobs.scheduling.calendar import load_windows
from jobs.worker import runtime_of
from storage import alert_repo, repo
from storage.alert_models import Channel, MaintenanceWindow
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult
from storage.types import utcnow
from tests.conftest import isolated_env
from tests.helpers import collect_events, row_id, running_worker
from tests.jobs.alerts.helpers import add_change, add_channel, add_device, eventually
from tests.jobs.alerts.receiver import receiver
from tests.storage.test_postgres import empty_database

pytestmark = pytest.mark.postgres


def ledger_row(device: int, channel: int, change: int, reminder: int = 0) -> dict[str, object]:
    return {"device_id": device, "channel_id": channel, "state_change_id": change,
            "reminder": reminder, "status": "pending", "reason": None}  # fmt: skip


async def test_channels_and_maintenance_windows_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = pg
    hook = await add_channel(engine, "https://hooks.example.org/x", headers={"X-Team": "net"})
    phone = await add_channel(engine, "ntfy://ntfy.sh/topic", kind="apprise", is_default=False)
    async with session_factory(engine)() as session:
        channels = await alert_repo.list_channels(session)
        assert [(c.id, c.kind, c.headers) for c in channels] == [
            (hook, "webhook", {"X-Team": "net"}),
            (phone, "apprise", None),
        ]
        assert await alert_repo.existing_channel_ids(session, [phone, 999_999]) == {phone}
        assert await alert_repo.existing_channel_ids(session, []) == set()
        start = utcnow() - timedelta(minutes=5)
        session.add(MaintenanceWindow(name="now", device_ids=[1, 2], start=start,
                                      duration_seconds=600, mode="suppress_alerts"))  # fmt: skip
        session.add(MaintenanceWindow(name="off", cron="0 2 * * 0", duration_seconds=60,
                                      timezone="Europe/Berlin", mode="skip_probes",
                                      is_active=False))  # fmt: skip
        await session.commit()
        every = await alert_repo.list_windows(session)
        active = await alert_repo.list_windows(session, active_only=True)
    assert [w.name for w in every] == ["now", "off"] and [w.name for w in active] == ["now"]
    assert active[0].device_ids == [1, 2] and active[0].start == start
    [window] = await load_windows(engine)  # as schedulers, workers and uptime read them
    assert window.device_ids == frozenset({1, 2}) and window.start == start
    assert window.created_at is not None and window.created_at.tzinfo is not None


async def test_the_ledger_records_each_notification_once_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, other = pg
    device = await add_device(engine, reminder_every_minutes=5)
    quiet = await add_device(engine, name="quiet")
    channel = await add_channel(engine, "https://hooks.example.org/x")
    second = await add_channel(engine, "https://hooks.example.org/y")
    down = await add_change(engine, device, 1, "up", "down")
    await add_change(engine, quiet, 1, "up", "down")
    rows = [ledger_row(device, channel, down.id), ledger_row(device, second, down.id)]

    assert await alert_repo.record_notifications(engine, rows) == 2
    assert await alert_repo.record_notifications(engine, rows) == 0  # a redelivery
    reminder = ledger_row(device, channel, down.id, reminder=1)
    assert await alert_repo.record_notifications(other, [*rows, reminder]) == 1
    # Two pools racing over the same keys: each row lands once, whoever wins.
    racing = [ledger_row(device, channel, down.id, reminder=n) for n in range(2, 12)]
    landed = await asyncio.gather(
        *(alert_repo.record_notifications(e, racing) for e in (engine, other) * 3)
    )
    assert sum(landed) == len(racing)
    # The unique key itself, not only the ON CONFLICT clause, refuses a second row.
    stamp = {"created_at": utcnow(), "updated_at": utcnow()}
    with pytest.raises(IntegrityError, match="uq_notifications_change_channel"):
        async with engine.begin() as conn:
            await conn.execute(insert(alert_repo.NOTIFICATIONS).values(**rows[0], **stamp))

    found = await alert_repo.get_notification(engine, down.id, channel, 0)
    assert found is not None and (found["status"], found["attempts"]) == ("pending", 0)
    assert await alert_repo.get_notification(engine, down.id, channel, 99) is None
    await alert_repo.note_attempt(engine, down.id, channel, 0, 1, response_code=500,
                                  error="HTTP 500")  # fmt: skip
    found = await alert_repo.get_notification(engine, down.id, channel, 0)
    assert found is not None and (found["attempts"], found["response_code"]) == (1, 500)
    # Two deliveries of the same notification finish it: one update lands.
    at = utcnow()
    finished = await asyncio.gather(
        *(
            alert_repo.finish_notification(e, down.id, channel, 0, status="sent", attempt=2,
                                           response_code=200, error=None, at=at)
            for e in (engine, other)
        )
    )  # fmt: skip
    assert sorted(finished, key=lambda x: x is None) == [found["id"], None]
    done = await alert_repo.get_notification(engine, down.id, channel, 0)
    assert done is not None and (done["status"], done["attempts"], done["sent_at"]) == (
        "sent", 2, at)  # fmt: skip
    # A finished row takes no more attempts.
    await alert_repo.note_attempt(engine, down.id, channel, 0, 3, response_code=500, error="x")
    assert (await alert_repo.get_notification(engine, down.id, channel, 0) or {})["attempts"] == 2

    async with session_factory(engine)() as session:
        page = await alert_repo.list_notifications(
            session, device_id=device, channel_id=None, status=None, limit=5, before_id=None
        )
        assert len(page) == 5 and [r.id for r in page] == sorted(
            (row_id(r) for r in page), reverse=True
        )
        rest = await alert_repo.list_notifications(
            session, device_id=device, channel_id=None, status=None, limit=50,
            before_id=page[-1].id,
        )  # fmt: skip
        assert len(page) + len(rest) == 13 and {r.id for r in page}.isdisjoint(r.id for r in rest)
        sent = await alert_repo.list_notifications(
            session, device_id=None, channel_id=channel, status="sent", limit=50, before_id=None
        )
        assert [(r.state_change_id, r.reminder) for r in sent] == [(down.id, 0)]
        assert not await alert_repo.list_notifications(
            session, device_id=quiet, channel_id=None, status=None, limit=50, before_id=None
        )

    stale = await alert_repo.stale_pending(engine, utcnow() + timedelta(seconds=1))
    assert len(stale) == 12 and (down.id, channel, 0) not in {
        (s["state_change_id"], s["channel_id"], s["reminder"]) for s in stale
    }
    touched_before = utcnow()
    await alert_repo.touch(engine, down.id, second, 0)
    still = await alert_repo.stale_pending(engine, touched_before)
    assert (down.id, second, 0) not in {
        (s["state_change_id"], s["channel_id"], s["reminder"]) for s in still
    }
    assert len(still) == 11

    # What reminders and messages read.
    [latest] = await alert_repo.latest_changes_down(engine)  # quiet has no reminders
    assert (latest["id"], latest["reminder_every_minutes"]) == (down.id, 5)
    change = await alert_repo.state_change(engine, down.id)
    assert change is not None and (change["from_state"], change["to_state"]) == ("up", "down")
    assert await alert_repo.state_change(engine, 999_999) is None
    assert await alert_repo.last_result(engine, device) is None
    async with engine.begin() as conn:
        await conn.execute(
            insert(CheckResult.__table__),  # type: ignore[attr-defined]
            [
                {"device_id": device, "status_up": up, "latency_ms": ms, "run_key": key,
                 "checked_at": utcnow() - timedelta(seconds=ago), "outcome": outcome}
                for up, ms, key, ago, outcome in (
                    (True, 5.0, "r1", 60, "up"), (False, None, "r2", 1, "down"))
            ],
        )  # fmt: skip
    last = await alert_repo.last_result(engine, device)
    assert last is not None and (last["outcome"], last["latency_ms"]) == ("down", None)


async def test_a_redelivered_notification_is_sent_and_recorded_once_on_postgresql(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with empty_database() as url:
        env = isolated_env(nats_server.url, tmp_path, DATABASE_URL=url)
        settings = Settings(**env)  # type: ignore[arg-type]
        engine = make_engine(settings)
        try:
            await init_db(engine)
            with receiver() as rx:
                channel = await add_channel(engine, rx.url, secret="pg")
                device = await add_device(engine)
                change = await add_change(engine, device, 1, "up", "down")
                async with (
                    collect_events(settings) as events,
                    running_worker(settings) as broker,
                ):
                    for _ in range(2):  # two processes would both try: still one
                        await enqueue_change(engine, broker, change)
                    await eventually(lambda: rx.count() >= 1, what="the webhook")
                    await eventually(
                        lambda: any(e["type"] == "notification.sent" for e in events),
                        what="notification.sent",
                    )
                    # The message delivered again (a worker died before its ack).
                    runtime = runtime_of(broker.state)
                    parts = AlertParts(settings, runtime.engine, broker, runtime.alert_http,
                                       runtime.events)  # fmt: skip
                    again = await deliver(NotifyJob(state_change_id=change.id,
                                                    channel_id=channel), parts)  # fmt: skip
                    await asyncio.sleep(0.5)  # a duplicate would land now
                assert again["status"] == "sent"  # finished already: nothing sent
                assert rx.count() == 1
                assert rx.requests[0].headers["idempotency-key"] == f"notify:{change.id}:{channel}"
                async with session_factory(engine)() as session:
                    rows = await alert_repo.list_notifications(
                        session, device_id=device, channel_id=None, status=None, limit=10,
                        before_id=None,
                    )  # fmt: skip
                assert [(r.status, r.attempts, r.response_code) for r in rows] == [("sent", 1, 200)]
                assert sum(e["type"] == "notification.sent" for e in events) == 1
        finally:
            await engine.dispose()


async def test_deleting_a_device_takes_its_notifications_and_window_entries_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = pg
    kept, doomed = await add_device(engine, name="kept"), await add_device(engine, name="doomed")
    channel = await add_channel(engine, "https://hooks.example.org/x")
    rows = []
    for device in (kept, doomed):
        change = await add_change(engine, device, 1, "up", "down")
        rows.append(ledger_row(device, channel, change.id))
    assert await alert_repo.record_notifications(engine, rows) == 2
    async with session_factory(engine)() as session:
        session.add(MaintenanceWindow(name="both", device_ids=[kept, doomed], cron="0 2 * * 0",
                                      duration_seconds=60, mode="suppress_alerts"))  # fmt: skip
        await session.commit()
        doomed_row = await repo.get_device(session, doomed)
        assert doomed_row is not None
        await repo.delete_device(session, doomed_row)
    async with session_factory(engine)() as session:
        left = await alert_repo.list_notifications(
            session, device_id=None, channel_id=None, status=None, limit=10, before_id=None
        )
        [window] = await alert_repo.list_windows(session)
    assert [r.device_id for r in left] == [kept] and window.device_ids == [kept]


async def test_deleting_a_channel_takes_it_out_of_devices_channel_ids_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = pg
    kept = await add_channel(engine, "https://hooks.example.org/x")
    doomed = await add_channel(engine, "https://hooks.example.org/y")
    both = await add_device(engine, name="both", channel_ids=[kept, doomed])
    only = await add_device(engine, name="only", channel_ids=[doomed])
    default = await add_device(engine, name="default")
    async with session_factory(engine)() as session:
        channel = await session.get(Channel, doomed)
        assert channel is not None
        assert await alert_repo.delete_channel(session, channel) == 2
    async with session_factory(engine)() as session:
        left = {d: (await repo.get_device(session, d)) for d in (both, only, default)}
    assert {d: row.channel_ids for d, row in left.items() if row} == {
        both: [kept], only: [], default: None}  # fmt: skip


async def test_the_changes_a_window_kept_quiet_are_found_on_postgresql(
    pg: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """``held_changes`` (the "still down after maintenance" sweep's query): the latest
    change in a problem state whose every row of a channel was held back by a window."""
    engine, _ = pg
    stuck, told, recovered, snoozed = [
        await add_device(engine, name=n) for n in ("stuck", "told", "recovered", "snoozed")
    ]
    channel = await add_channel(engine, "https://hooks.example.org/x")
    second = await add_channel(engine, "https://hooks.example.org/y")
    held = {"status": "suppressed", "reason": "maintenance window 7"}
    down = await add_change(engine, stuck, 1, "up", "down")
    rows = [
        {**ledger_row(stuck, channel, down.id), **held},
        {**ledger_row(stuck, channel, down.id, reminder=2), **held},
        {**ledger_row(stuck, second, down.id), **held},
        {**ledger_row(stuck, second, down.id, reminder=1), "reason": "after maintenance window 7"},
    ]
    change = await add_change(engine, told, 1, "up", "degraded")
    rows += [{**ledger_row(told, channel, change.id), **held},
             ledger_row(told, channel, change.id, reminder=1)]  # fmt: skip
    for revision, (a, b) in enumerate((("up", "down"), ("down", "up")), start=1):
        change = await add_change(engine, recovered, revision, a, b)
        rows.append({**ledger_row(recovered, channel, change.id), **held})
    change = await add_change(engine, snoozed, 1, "up", "down")
    rows.append({**ledger_row(snoozed, channel, change.id), "status": "suppressed",
                 "reason": "snoozed until 2026-12-08T00:00:00+00:00"})  # fmt: skip
    assert await alert_repo.record_notifications(engine, rows) == len(rows)

    found = await alert_repo.held_changes(engine, ["degraded", "down"], "maintenance window ")
    # stuck's first channel only: its second was told (pending), `told` was told (reminder
    # 1), `recovered` is up, `snoozed` was held back by its snooze, not a window.
    assert [(r["id"], r["channel_id"], r["last_reminder"], r["held_reason"]) for r in found] == [
        (down.id, channel, 2, "maintenance window 7"),
    ]
    assert found[0]["device_id"] == stuck and found[0]["to_state"] == "down"
