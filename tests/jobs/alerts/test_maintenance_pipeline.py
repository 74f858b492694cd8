"""A maintenance window through the whole pipeline (a probe schedule, the in-process
worker, the health hook, the alerts listener, a real webhook receiver): a device that goes
down and up inside a ``suppress_alerts`` window has its state changes recorded, its
results marked ``in_maintenance`` and its notifications ``suppressed``, and nothing
reaches the receiver; once the window is gone the next down and up are sent, once each."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.alert_models import MaintenanceWindow
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult, DeviceHealth, StateChange
from storage.types import utcnow
from tests import targets
from tests.conftest import isolated_env
from tests.helpers import row_id, running_worker, wait_for
from tests.jobs.alerts.helpers import add_channel, add_device, eventually, notifications
from tests.jobs.alerts.receiver import receiver


async def test_a_window_suppresses_the_alerts_of_a_flap_and_the_next_flap_is_sent(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    # The worker re-reads the windows every ALERT_SWEEP_SECONDS to mark its results.
    env = isolated_env(nats_server.url, tmp_path, ALERT_SWEEP_SECONDS="0.2")
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    sessions = session_factory(engine)
    switch = uuid.uuid4().hex[:8]

    async def state_is(wanted: str) -> bool:
        async with sessions() as session:
            row = await session.get(DeviceHealth, device)
        return row is not None and row.state == wanted

    with receiver() as rx:
        channel = await add_channel(engine, rx.url)
        device = await add_device(engine, name="patched", address=f"{http_target}/switch/{switch}",
                                  interval_seconds=1, timeout_seconds=2,
                                  failure_threshold=1, success_threshold=1)  # fmt: skip
        async with sessions() as session:
            window = MaintenanceWindow(name="patch", device_ids=[device], mode="suppress_alerts",
                                       start=utcnow() - timedelta(minutes=1),
                                       duration_seconds=3600)  # fmt: skip
            session.add(window)
            await session.commit()
            window_id = window.id
        async with running_worker(settings) as broker:
            scheduler = ProbeScheduler(settings, broker, engine)
            await scheduler.start()
            try:
                await wait_for(lambda: state_is("up"), timeout=30, what="first up")
                for phase in ("in the window", "after it"):
                    targets.switches[switch] = 500
                    await wait_for(lambda: state_is("down"), timeout=30, what=f"down {phase}")
                    targets.switches[switch] = 200
                    await wait_for(lambda: state_is("up"), timeout=30, what=f"up {phase}")
                    if phase == "in the window":
                        ended = utcnow()
                        async with sessions() as session:
                            row = await session.get(MaintenanceWindow, window_id)
                            assert row is not None
                            await session.delete(row)
                            await session.commit()
                await eventually(lambda: rx.count() >= 2, timeout=30, what="two webhooks")
                # a result probed well after the window, to be seen unmarked
                later = utcnow() + timedelta(seconds=1)

                async def probed_after() -> bool:
                    async with sessions() as session:
                        stmt = select(CheckResult).where(col(CheckResult.checked_at) > later)
                        return (await session.exec(stmt)).first() is not None

                await wait_for(probed_after, timeout=30, what="a later result")
            finally:
                await scheduler.stop()
                targets.switches.pop(switch, None)

        async with sessions() as session:
            stmt = select(StateChange).where(StateChange.device_id == device)
            changes = list((await session.exec(stmt.order_by(col(StateChange.revision)))).all())
            results = list((await session.exec(select(CheckResult))).all())
        # Every change recorded, the window's included.
        assert [(c.from_state, c.to_state) for c in changes] == [
            ("unknown", "up"), ("up", "down"), ("down", "up"), ("up", "down"), ("down", "up"),
        ]  # fmt: skip
        in_window, after = changes[1:3], changes[3:5]
        assert all(c.at < ended for c in in_window)
        # Nothing reached the receiver for the window's flap; one webhook each after it.
        assert sorted(r.body["state_change"]["id"] for r in rx.requests) == [c.id for c in after]
        rows = {r.state_change_id: r for r in await notifications(engine)}
        assert sorted(rows) == [c.id for c in in_window + after]
        for c in in_window:
            note = rows[row_id(c)]
            assert note.status == "suppressed", note
            assert note.reason == f"maintenance window {window_id}"
            assert note.channel_id == channel and note.attempts == 0
        assert [rows[row_id(c)].status for c in after] == ["sent", "sent"]
        # The window's results were marked (those probed before its up slot were judged
        # before the window was deleted), the last ones (well after it) not.
        window_results = [r for r in results if in_window[0].at <= r.checked_at < in_window[1].at]
        assert window_results and all(r.in_maintenance for r in window_results)
        assert not any(r.in_maintenance for r in results if r.checked_at > later)
    await engine.dispose()
