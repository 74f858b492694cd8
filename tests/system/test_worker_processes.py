"""``python scheduler.py --workers N``: real worker processes beside the in-process worker.

- they start and share the one consumer: probes are run by more than one process;
- SIGTERM to scheduler.py stops them first, then itself, exit 0, no process left;
- a worker process killed (taskiq's parent, or its worker child) is started again;
- scheduler.py SIGKILLed: its worker processes stop by themselves (PDEATHSIG).
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import psutil
import pytest

from core.natsserver import EmbeddedNats
from core.settings import Settings
from tests.conftest import isolated_env
from tests.helpers import collect_events, wait_for
from tests.processes import Proc, scheduler_cmd
from tests.system.test_shutdown_and_load import count, kick_many

pytestmark = pytest.mark.slow

LISTENING = "listening stream="


def _listening(proc: Proc) -> int:
    return proc.output().count(LISTENING)


async def _started(proc: Proc, listeners: int) -> None:
    async def ready() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"scheduler.py exited:\n{proc.output()[-3000:]}")
        return _listening(proc) >= listeners

    await wait_for(ready, timeout=60, what=f"{listeners} listening consumers")


def _tree(pid: int) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    return children


def _gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still running (not zombies) after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _start(env: dict[str, str], tmp_path: Path, *args: str) -> Proc:
    return scheduler_cmd(env, tmp_path / "scheduler.log", "--no-web", "--no-scheduler", *args)


def _worker_pids(events: list[dict[str, object]]) -> Counter[str]:
    return Counter(
        str(e["payload"]["worker"]).rpartition(":")[2]  # type: ignore[index]
        for e in events
        if e["type"] == "check.created"
    )


async def test_worker_processes_share_the_queue_and_stop_first_leaving_nothing(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path, WORKERS="1")  # the setting, not the flag
    settings = Settings(**env)  # type: ignore[arg-type]
    proc = _start(env, tmp_path)
    try:
        await _started(proc, 2)  # the in-process worker and the worker process
        assert "worker_processes=1" in proc.output()
        children = _tree(proc.pid)
        taskiq = [c for c in children if "taskiq" in " ".join(c.cmdline())]
        assert len(taskiq) == 2  # taskiq's parent and its worker child
        async with collect_events(settings) as events:
            await kick_many(settings, f"{http_target}/slow?ms=50", 400, "share")
            await wait_for(lambda: _stored(settings, 400), timeout=60, what="400 stored")
            await wait_for(lambda: _events(events, 400), timeout=10, what="400 events")
        by_pid = _worker_pids(events)
        assert sum(by_pid.values()) == 400
        assert str(proc.pid) in by_pid  # the in-process worker
        assert {str(c.pid) for c in taskiq} & set(by_pid)  # and the worker process
        assert len(by_pid) == 2, by_pid
    finally:
        code = proc.stop(signal.SIGTERM, timeout=30)
    out = proc.output()
    assert code == 0, out[-3000:]
    assert _gone(children, timeout=5) == []
    # The worker processes stopped before the in-process parts.
    assert out.index("stopped worker processes") < out.index("stopped worker\n")
    assert "worker process stopped count=1 exits=0 restarts=0 status=code=0" in out


async def _stored(settings: Settings, n: int) -> bool:
    return await count(settings) >= n


async def _events(events: list[dict[str, object]], n: int) -> bool:
    return sum(e["type"] == "check.created" for e in events) >= n


async def test_a_killed_worker_process_is_restarted(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    settings = Settings(**env)  # type: ignore[arg-type]
    proc = _start(env, tmp_path, "--workers", "1")
    try:
        await _started(proc, 2)
        (parent,) = psutil.Process(proc.pid).children()
        (child,) = parent.children()

        # taskiq's parent killed: ours restarts it, and its orphaned worker child is
        # stopped first (no second consumer left running).
        parent.kill()
        await _started(proc, 3)
        out = proc.output()
        assert f"worker process 1 exited unexpectedly pid={parent.pid} signal=SIGKILL" in out
        assert "worker process 1 restarted pid=" in out
        assert _gone([parent, child], timeout=10) == []
        (parent2,) = psutil.Process(proc.pid).children()
        (child2,) = parent2.children()
        assert parent2.pid != parent.pid

        # Its worker child killed: taskiq's parent starts another.
        child2.kill()
        await _started(proc, 4)
        (child3,) = parent2.children()
        assert child3.pid != child2.pid

        async with collect_events(settings) as events:
            await kick_many(settings, f"{http_target}/slow?ms=50", 400, "again")
            await wait_for(lambda: _stored(settings, 400), timeout=60, what="400 stored")
            await wait_for(lambda: _events(events, 400), timeout=10, what="400 events")
        assert str(child3.pid) in _worker_pids(events)  # the restarted one works
        everything = [parent2, child3]
    finally:
        code = proc.stop(signal.SIGTERM, timeout=30)
    assert code == 0, proc.output()[-3000:]
    assert _gone(everything, timeout=5) == []


async def test_worker_processes_stop_when_scheduler_py_is_killed(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = isolated_env(nats_server.url, tmp_path)
    proc = _start(env, tmp_path, "--workers", "2")
    try:
        await _started(proc, 3)
        children = _tree(proc.pid)
        assert len(children) == 4  # two taskiq parents, a worker child each
        proc.send(signal.SIGKILL)
        # Each taskiq parent gets SIGTERM from the kernel and stops its child.
        assert _gone(children, timeout=30) == []
    finally:
        proc.stop()
