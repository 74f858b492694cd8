"""Delivery guarantees with real `taskiq worker` processes and a real nats-server.

- a worker SIGKILLed mid-task loses nothing: the task is redelivered and stored once
  (negative control: acknowledging on receipt loses it, so the test can fail);
- a task at the longest allowed timeout is never delivered twice (ack_wait outlives it);
- a deployment whose stream or consumer disagrees, or that lacks a queued task, refuses
  to run instead of acking and dropping messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from nats.js.api import RetentionPolicy, StreamConfig
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.job import ProbeJobSpec, one_off_job
from jobs.probe.kick import kick_probe
from jobs.queue.broker import make_broker
from jobs.queue.errors import BrokerConfigError
from jobs.worker import register_tasks
from storage.db import init_db, make_engine, session_factory
from storage.models import CheckResult
from tests import targets
from tests.conftest import isolated_env
from tests.helpers import running_worker, wait_for
from tests.processes import Proc, running, taskiq_worker

pytestmark = pytest.mark.slow

# ack_wait 6 s: the longest task is PROBE_MAX_TIMEOUT_SECONDS 2 + 2 s to store it.
FAST_REDELIVERY = {
    "PROBE_MAX_TIMEOUT_SECONDS": "2",
    "PROBE_TIMEOUT_SECONDS": "2",
    "NATS_TIMEOUT": "1",
    "ACK_WAIT_SECONDS": "6",
}


async def rows(engine: AsyncEngine) -> list[CheckResult]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(CheckResult))).all())


async def ready(proc: Proc) -> bool:
    return "listening stream=" in proc.output()


def kill_group(proc: Proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the worker's parent and children, no goodbye
    proc.popen.wait(timeout=10)


async def kick_gate(
    settings: Settings, target: str, name: str, seconds: float, timeout: float
) -> None:
    spec = ProbeJobSpec(
        device_id=1,
        address=f"{target}/gate/{name}?s={seconds}",
        interval=60,
        timeout=timeout,
    )
    async with running_worker(settings, worker=False) as broker:
        await kick_probe(broker, one_off_job(spec, f"run:{name}", "manual"))


async def _kill_mid_task(tmp_path: Path, nats_url: str, target: str, *ack: str) -> tuple[int, int]:
    """Kick one slow probe, SIGKILL the worker running it, start a fresh worker, wait past
    ack_wait.  Returns (stored rows, times the target was hit)."""
    env = isolated_env(nats_url, tmp_path, **FAST_REDELIVERY)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    name = uuid.uuid4().hex
    first = taskiq_worker(env, tmp_path / "first.log", *ack)
    with running(first):
        await wait_for(lambda: ready(first), timeout=30, what="first worker")
        await kick_gate(settings, target, name, seconds=1.5, timeout=2)
        await wait_for(lambda: _arrived(name), timeout=10, what="probe in flight")
        kill_group(first)
    second = taskiq_worker(env, tmp_path / "second.log", *ack)
    with running(second):
        await wait_for(lambda: ready(second), timeout=30, what="second worker")
        await asyncio.sleep(settings.ack_wait_seconds + 3)  # past redelivery, and its run
        stored = await rows(engine)
    await engine.dispose()
    return len(stored), targets.arrivals.get(name, 0)


async def _arrived(name: str) -> bool:
    return targets.arrivals.get(name, 0) > 0


async def test_a_task_whose_worker_is_killed_is_redelivered_and_stored_once(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    stored, hits = await _kill_mid_task(tmp_path, nats_server.url, http_target)
    print(f"FIGURES kill-mid-task: workers_killed=1 runs={hits} stored={stored}")
    assert hits == 2  # ran on the killed worker, then again on the new one
    assert stored == 1


async def test_negative_control_acking_on_receipt_loses_the_task(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    stored, hits = await _kill_mid_task(
        tmp_path, nats_server.url, http_target, "--ack-type", "when_received"
    )
    print(f"FIGURES negative-control: workers_killed=1 runs={hits} stored={stored}")
    assert hits == 1  # never redelivered ...
    assert stored == 0  # ... so the result is lost: the guarantee above is what saves it


async def test_the_longest_allowed_probe_runs_once(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path, **FAST_REDELIVERY)
    settings = Settings(**env)  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    name = uuid.uuid4().hex
    worker = taskiq_worker(env, tmp_path / "w.log")
    with running(worker):
        await wait_for(lambda: ready(worker), timeout=30, what="worker")
        # The target answers after 30 s; the probe gives up at the 2 s cap.
        await kick_gate(settings, http_target, name, seconds=30, timeout=2)
        await asyncio.sleep(settings.ack_wait_seconds + 3)
        stored = await rows(engine)
    await engine.dispose()
    assert targets.arrivals[name] == 1
    assert len(stored) == 1 and stored[0].error_kind == "timeout"


def test_an_ack_wait_shorter_than_the_longest_task_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the longest task"):
        Settings(PROBE_MAX_TIMEOUT_SECONDS=30, ACK_WAIT_SECONDS=20)  # type: ignore[call-arg]


async def test_a_process_with_another_consumer_config_refuses_to_start(
    settings: Settings,
) -> None:
    async with running_worker(settings, worker=False):
        other = settings.model_copy(update={"jobs_max_deliver": settings.jobs_max_deliver + 1})
        broker = make_broker(other)
        register_tasks(broker)
        with pytest.raises(BrokerConfigError, match="max_deliver"):
            await broker.startup()
        await broker.shutdown()


async def test_a_stream_with_another_retention_is_refused(settings: Settings) -> None:
    async with running_worker(settings, worker=False) as first:
        await first.js.delete_stream(settings.jobs_stream)
        await first.js.add_stream(
            StreamConfig(
                name=settings.jobs_stream,
                subjects=[settings.jobs_subject],
                retention=RetentionPolicy.LIMITS,
            )
        )
    broker = make_broker(settings)
    register_tasks(broker)
    with pytest.raises(BrokerConfigError, match="retention"):
        await broker.startup()
    await broker.shutdown()


async def test_a_worker_lacking_a_queued_task_exits_non_zero_and_keeps_the_message(
    settings: Settings, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    env_settings = Settings(**env)  # type: ignore[arg-type]
    async with running_worker(env_settings, worker=False) as broker:
        message = (
            b'{"task_id":"x1","task_name":"fleetprobe.from_the_future","labels":{},'
            b'"labels_types":{},"args":[],"kwargs":{}}'
        )
        await broker.js.publish(env_settings.jobs_subject, message)
        worker = taskiq_worker(env, tmp_path / "w.log", "--max-fails", "1")
        with running(worker):
            code = await asyncio.to_thread(worker.popen.wait, 60)
        assert code != 0
        assert "fleetprobe.from_the_future" in worker.output()
        assert "does not have" in worker.output()
        info = await broker.js.stream_info(env_settings.jobs_stream)
        assert info.state.messages == 1  # handed back, not acked and dropped
