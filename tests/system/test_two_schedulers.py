"""One scheduled slot, one run, even with two schedulers.

- without a lease, two schedulers both kick every slot and JetStream's de-duplication
  (``Nats-Msg-Id`` = the slot's run key) leaves one message: one execution per slot;
- two ``python scheduler.py --no-web`` processes: one leader kicks, each slot runs once;
  the leader SIGKILLed, the other takes over within the lease time plus one interval.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from datetime import datetime
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.scheduler import ProbeScheduler
from storage.db import make_engine
from tests.conftest import isolated_env
from tests.helpers import (
    add_devices,
    collect_events,
    running_worker,
    stored_checks,
    wait_for,
)
from tests.processes import Proc, running, scheduler_cmd

pytestmark = pytest.mark.slow

DEVICES = 5
RUN_S = 60  # "a minute of short intervals"


async def test_two_schedulers_without_a_lease_run_each_slot_once(
    settings: Settings, http_target: str
) -> None:
    await add_devices(settings, f"{http_target}/ok", DEVICES, interval=1)
    engine = make_engine(settings)
    async with collect_events(settings) as events, running_worker(settings) as broker:
        a = ProbeScheduler(settings, broker, engine)
        b = ProbeScheduler(settings, broker, engine)
        await a.start()
        await b.start()
        await asyncio.sleep(4)
        await a.stop()
        await b.stop()
        kicked_slots = a.kicks  # b kicked the same slots; JetStream dropped b's copies
        assert a.kicks >= 3 * DEVICES and b.kicks >= 3 * DEVICES
        await asyncio.sleep(1.5)  # let the last probes finish
    await engine.dispose()
    runs = Counter(e["payload"]["run_key"] for e in events if e["type"] == "check.created")
    assert runs and max(runs.values()) == 1  # no slot executed twice
    assert abs(len(runs) - kicked_slots) <= DEVICES  # the schedulers agreed on the slots
    rows = await stored_checks(settings)
    assert len(rows) == len(runs)


def _leader(procs: tuple[Proc, ...]) -> Proc | None:
    leaders = [p for p in procs if "leadership acquired" in p.output()]
    return leaders[0] if len(leaders) == 1 else None


async def test_two_scheduler_processes_share_one_leader_and_fail_over(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(
        nats_server.url,
        tmp_path,
        LEADER_LEASE_SECONDS="3",
        LEADER_BUCKET=f"lease_{tmp_path.name[-20:].replace('.', '_')}",
        PROBE_MAX_TIMEOUT_SECONDS="2",
        PROBE_TIMEOUT_SECONDS="2",
        NATS_TIMEOUT="1",
        ACK_WAIT_SECONDS="6",
    )
    settings = Settings(**env)  # type: ignore[arg-type]
    await add_devices(settings, f"{http_target}/ok", DEVICES, interval=1)
    first = scheduler_cmd(env, tmp_path / "a.log", "--no-web")
    second = scheduler_cmd(env, tmp_path / "b.log", "--no-web")
    async with collect_events(settings) as events:
        with running(first, second):
            for p in (first, second):
                await wait_for(partial(_running, p), timeout=60, what=f"{p.log.name} up")
            await wait_for(lambda: _one_leader((first, second)), timeout=10, what="a leader")
            leader = _leader((first, second))
            assert leader is not None
            follower = second if leader is first else first
            window_start = time.time()
            await asyncio.sleep(RUN_S)  # both running for a minute, one kicking
            window_end = time.time()
            before_kill = [e["payload"] for e in events if e["type"] == "check.created"]
            runs = Counter(p["run_key"] for p in before_kill)
            assert max(runs.values()) == 1  # no slot executed twice
            # ... and none skipped: every device ran every 1 s slot inside the window.
            for device_id in {p["device_id"] for p in before_kill}:
                slots = sorted(
                    datetime.fromisoformat(p["slot_at"]).timestamp()
                    for p in before_kill
                    if p["device_id"] == device_id
                    and window_start + 1
                    < datetime.fromisoformat(p["slot_at"]).timestamp()
                    < window_end - 1
                )
                assert len(slots) >= RUN_S - 3
                assert all(0.9 < b - a < 1.1 for a, b in pairwise(slots))

            os.killpg(leader.pid, signal.SIGKILL)
            killed_at = time.time()
            await wait_for(
                lambda: _acquired(follower), timeout=3 + 1 + 5, what="the follower takes over"
            )
            took_over_s = time.time() - killed_at
            await wait_for(
                lambda: _probed_after(settings, killed_at + took_over_s),
                timeout=10,
                what="probes kicked by the new leader",
            )
            # Slots that came while nobody led (the old leader dead, the lease not yet
            # expired) are caught up by the new leader: each device's latest one.
            gap = (killed_at + 0.2, killed_at + took_over_s + 0.1)

            async def gap_caught_up() -> bool:
                rows = await stored_checks(settings)
                return {
                    r.device_id
                    for r in rows
                    if r.slot_at is not None and gap[0] < r.slot_at.timestamp() <= gap[1]
                } == set(range(1, DEVICES + 1))

            await wait_for(gap_caught_up, timeout=10, what="the unled slots caught up")
    assert took_over_s <= 3 + 1 + 2  # lease + one interval (+ scheduling slack)
    print(
        f"FIGURES fail-over: lease_s=3 interval_s=1 took_over_s={took_over_s:.1f} "
        f"slots_before_kill={len(runs)} executed_twice=0 skipped=0"
    )
    rows = await stored_checks(settings)
    per_slot = Counter((r.device_id, r.slot_at) for r in rows)
    assert max(per_slot.values()) == 1


async def _running(p: Proc) -> bool:
    return "fleetprobe running" in p.output()


async def _one_leader(procs: tuple[Proc, ...]) -> bool:
    return _leader(procs) is not None


async def _acquired(p: Proc) -> bool:
    return len(re.findall("leadership acquired", p.output())) >= 1


async def _probed_after(settings: Settings, t: float) -> bool:
    rows = await stored_checks(settings)
    return any(r.slot_at is not None and r.slot_at.timestamp() > t for r in rows)
