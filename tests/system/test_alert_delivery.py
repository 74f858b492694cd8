"""Alert delivery across real worker processes (``taskiq worker worker:broker``): a local
target flapping down and up, probed on a schedule by two workers, gets exactly one signed
webhook per stored state change (the whole pipeline: probe, health hook, listener, queue,
delivery); each change enqueued twice is still delivered once; a worker SIGKILLed while
its delivery is in flight loses nothing, and the ledger records it once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.alerts.enqueue import enqueue_change
from jobs.alerts.policy import wants
from jobs.probe.scheduler import ProbeScheduler
from storage.db import init_db, make_engine, session_factory
from storage.models import DeviceHealth, StateChange
from tests import targets
from tests.conftest import isolated_env
from tests.helpers import collect_events, row_id, running_worker, wait_for
from tests.jobs.alerts.helpers import add_change, add_channel, add_device, eventually, notifications
from tests.jobs.alerts.receiver import receiver
from tests.processes import running, taskiq_worker
from tests.system.test_delivery import FAST_REDELIVERY, kill_group, ready

pytestmark = pytest.mark.slow


async def test_a_flapping_target_probed_by_two_workers_sends_one_signed_webhook_per_change(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    sessions = session_factory(engine)
    switch = uuid.uuid4().hex[:8]
    flaps = 3

    async def state_is(wanted: str) -> bool:
        async with sessions() as session:
            row = await session.get(DeviceHealth, device)
        return row is not None and row.state == wanted

    with receiver() as rx:
        channel = await add_channel(engine, rx.url, secret="flap-secret")
        # Down at the first failed probe, up at the first good one: each switch is a change.
        device = await add_device(engine, name="flappy", address=f"{http_target}/switch/{switch}",
                                  interval_seconds=1, timeout_seconds=2,
                                  failure_threshold=1, success_threshold=1)  # fmt: skip
        # Two more devices a second at their own phases, always up (no alert): the workers
        # mostly take turns over the messages of each second in their fixed order, so
        # with three devices the flapping one is probed by both (a lone device's messages
        # can lock onto one worker's fetch cycle; with an even count each device would
        # stay with one worker); see tests/system/test_state_changes.py.
        for i in range(2):
            await add_device(engine, name=f"filler{i}", address=f"{http_target}/ok",
                             interval_seconds=1)  # fmt: skip
        w1 = taskiq_worker(env, tmp_path / "w1.log")
        w2 = taskiq_worker(env, tmp_path / "w2.log")
        with running(w1, w2):
            for w in (w1, w2):
                await wait_for(partial(ready, w), timeout=30, what=f"{w.log.name} ready")
            async with (
                collect_events(settings) as events,
                running_worker(settings, worker=False) as broker,
            ):
                scheduler = ProbeScheduler(settings, broker, engine)
                await scheduler.start()
                try:
                    await wait_for(lambda: state_is("up"), timeout=30, what="up")

                    async def both_workers_probed() -> bool:
                        return len(probed_by(events, device)) == 2

                    # Pull consumers take whatever they fetch first: probe on until each
                    # process has stored results, so the changes are decided across both.
                    await wait_for(both_workers_probed, timeout=60, what="both workers probed")
                    for flap in range(flaps):
                        targets.switches[switch] = 500
                        await wait_for(lambda: state_is("down"), timeout=30, what=f"down {flap}")
                        targets.switches[switch] = 200
                        await wait_for(lambda: state_is("up"), timeout=30, what=f"up {flap}")
                finally:
                    await scheduler.stop()
                    targets.switches.pop(switch, None)
                await eventually(lambda: rx.count() >= 2 * flaps, timeout=60, what="webhooks")
                await asyncio.sleep(1.5)  # a duplicate, or a late change, would land now

        async with sessions() as session:
            stmt = select(StateChange).where(StateChange.device_id == device)
            stored = list((await session.exec(stmt.order_by(col(StateChange.revision)))).all())
        announced = [c for c in stored if wants(None, c.from_state, c.to_state)]
        assert [(c.from_state, c.to_state) for c in stored] == [("unknown", "up")] + [
            ("up", "down"), ("down", "up")
        ] * flaps  # fmt: skip
        # Exactly one webhook per stored (announced) change, none for unknown -> up.
        per_change = Counter(r.body["state_change"]["id"] for r in rx.requests)
        assert per_change == Counter({c.id: 1 for c in announced})
        for got in rx.requests:
            digest = hmac.new(b"flap-secret", got.raw, hashlib.sha256).hexdigest()
            assert got.headers["x-fleetprobe-signature"] == f"sha256={digest}"
            change_id = got.body["state_change"]["id"]
            assert got.headers["idempotency-key"] == f"notify:{change_id}:{channel}"
        by_id = {row_id(c): c for c in announced}
        for got in rx.requests:
            change = by_id[got.body["state_change"]["id"]]
            assert got.body["state_change"]["to"] == change.to_state
            assert got.body["state_change"]["run_key"] == change.run_key
        rows = await notifications(engine)
        assert sorted(r.state_change_id for r in rows) == sorted(by_id)
        assert {r.status for r in rows} == {"sent"}
        assert sum(e["type"] == "notification.sent" for e in events) == 2 * flaps
    await engine.dispose()


def probed_by(events: list[dict[str, Any]], device_id: int) -> set[str]:
    return {
        e["payload"]["worker"]
        for e in events
        if e["type"] == "check.created" and e["payload"]["device_id"] == device_id
    }


async def test_two_workers_send_one_signed_webhook_per_change_enqueued_twice(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    with receiver(delay_seconds=0.05) as rx:
        await add_channel(engine, rx.url, secret="flap-secret")
        device = await add_device(engine, name="flappy")
        w1 = taskiq_worker(env, tmp_path / "w1.log")
        w2 = taskiq_worker(env, tmp_path / "w2.log")
        with running(w1, w2):
            for w in (w1, w2):
                await wait_for(partial(ready, w), timeout=30, what=f"{w.log.name} ready")
            async with (
                collect_events(settings) as events,
                running_worker(settings, worker=False) as broker,
            ):
                changes = []
                for revision in range(1, 13):  # six down -> up flaps
                    before, after = ("up", "down") if revision % 2 else ("down", "up")
                    changes.append(await add_change(engine, device, revision, before, after))
                for change in changes + changes:  # enqueued twice: still once each
                    await enqueue_change(engine, broker, change)
                await eventually(
                    lambda: sum(e["type"] == "notification.sent" for e in events) >= 12,
                    timeout=60, what="12 sent",
                )  # fmt: skip
                await eventually(lambda: rx.count() >= 12, what="12 webhooks")
                await asyncio.sleep(1.0)  # a duplicate would land now
        per_change = Counter(r.body["state_change"]["id"] for r in rx.requests)
        assert per_change == Counter({c.id: 1 for c in changes})
        for got in rx.requests:
            digest = hmac.new(b"flap-secret", got.raw, hashlib.sha256).hexdigest()
            assert got.headers["x-fleetprobe-signature"] == f"sha256={digest}"
        assert [b["state_change"]["to"] for b in sorted(
            (r.body for r in rx.requests), key=lambda b: b["state_change"]["id"])
        ] == ["down", "up"] * 6  # fmt: skip
        rows = await notifications(engine)
        assert len(rows) == 12 and {r.status for r in rows} == {"sent"}
        assert sum(e["type"] == "notification.sent" for e in events) == 12
    await engine.dispose()


async def test_a_worker_killed_mid_delivery_still_delivers_and_records_once(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = isolated_env(nats_server.url, tmp_path, **FAST_REDELIVERY, ALERT_TIMEOUT_SECONDS="2")
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    # The first POST is answered after 1.5 s: the worker dies while it waits.
    with receiver(delays=[1.5]) as rx:
        channel = await add_channel(engine, rx.url)
        device = await add_device(engine)
        first = taskiq_worker(env, tmp_path / "first.log")
        with running(first):
            await wait_for(lambda: ready(first), timeout=30, what="first worker")
            async with running_worker(settings, worker=False) as broker:
                change = await add_change(engine, device, 1, "up", "down")
                await enqueue_change(engine, broker, change)
            await eventually(lambda: rx.count() >= 1, what="delivery in flight")
            kill_group(first)
        (row,) = await notifications(engine)
        assert row.status == "pending"  # the kill came before any answer was recorded
        second = taskiq_worker(env, tmp_path / "second.log")
        async with collect_events(settings) as events:
            with running(second):
                await wait_for(lambda: ready(second), timeout=30, what="second worker")

                async def sent() -> bool:
                    return [r.status for r in await notifications(engine)] == ["sent"]

                await wait_for(sent, timeout=settings.ack_wait_seconds + 20, what="sent row")
                await asyncio.sleep(1.0)
        assert rx.count() == 2  # at least once: the receiver may drop the repeat by key
        assert {r.headers["idempotency-key"] for r in rx.requests} == {
            f"notify:{change.id}:{channel}"
        }
        (row,) = await notifications(engine)
        assert (row.status, row.response_code) == ("sent", 200)
        assert sum(e["type"] == "notification.sent" for e in events) == 1
    await engine.dispose()
