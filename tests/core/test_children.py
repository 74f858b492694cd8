"""core.children: real child processes (small Python scripts) started, restarted when
they die, stopped with their whole process group, SIGKILLed when they ignore SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from core.children import ChildSupervisor, group_alive, poll_until
from core.settings import Settings, auto_workers

SLEEPER = "import time; time.sleep(120)"
# A parent that forks a child of its own into its process group and, on SIGTERM, stops
# it and waits for it (as `taskiq worker` does); it writes the child's pid to a file.
FORKER = (
    "import signal, subprocess, sys, time, pathlib; "
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "signal.signal(signal.SIGTERM, lambda *_: (c.terminate(), c.wait(), sys.exit(0))); "
    "pathlib.Path(sys.argv[1]).write_text(str(c.pid)); time.sleep(120)"
)
# Ignores SIGTERM (a hung worker), says so in a file.
STUBBORN = (
    "import signal, sys, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).write_text('ready'); time.sleep(120)"
)


async def _until(done: object, what: str, timeout: float = 20.0) -> None:
    if not await poll_until(done, timeout):  # type: ignore[arg-type]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_children_start_are_restarted_when_killed_and_stop_with_their_group(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "grandchild.pid"
    sup = ChildSupervisor("test child", [sys.executable, "-c", FORKER, str(marker)], 1, 5.0)
    sup.start()
    try:
        first = sup.pids[0]
        await _until(lambda: marker.exists() and marker.read_text(), "the grandchild")
        grandchild = int(marker.read_text())
        marker.unlink()
        assert os.getpgid(grandchild) == first  # in the child's group

        os.kill(first, signal.SIGKILL)
        await _until(lambda: sup.restarts == 1, "a restart")
        assert sup.exits == 1
        second = sup.pids[0]
        assert second != first
        # What the dead child had forked was stopped before the new one started.
        assert _gone(grandchild)
        assert not group_alive(first)
        await _until(lambda: marker.exists() and marker.read_text(), "the new grandchild")
        new_grandchild = int(marker.read_text())
    finally:
        await sup.stop()
    assert _gone(second) and _gone(new_grandchild)
    assert not group_alive(second)
    assert sup.restarts == 1  # stopping is not an exit to restart
    assert sup.children[0].process is not None and sup.children[0].process.returncode == 0


async def test_a_child_ignoring_sigterm_is_killed_after_the_stop_timeout(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    sup = ChildSupervisor("stubborn", [sys.executable, "-c", STUBBORN, str(ready)], 2, 0.5)
    sup.start()
    pids = sup.pids
    await _until(ready.exists, "the SIGTERM handler")
    await asyncio.sleep(0.3)  # both children past their signal() (the file is shared)
    await sup.stop()
    assert all(_gone(p) for p in pids)
    codes = [c.process.returncode for c in sup.children if c.process is not None]
    assert codes == [-signal.SIGKILL, -signal.SIGKILL]


async def test_several_children_each_have_their_own_process() -> None:
    sup = ChildSupervisor("sleepers", [sys.executable, "-c", SLEEPER], 3, 5.0)
    sup.start()
    try:
        pids = sup.pids
        assert len(set(pids)) == 3
        assert all(os.getpgid(p) == p for p in pids)  # each leads its own group
    finally:
        await sup.stop()
    assert all(_gone(p) for p in pids)
    assert [c.process.returncode for c in sup.children if c.process] == [-signal.SIGTERM] * 3


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 1), (3, 2), (4, 3), (8, 3), (64, 3)])
def test_auto_workers_is_the_cores_less_one_at_most_three(cpus: int, workers: int) -> None:
    assert auto_workers(cpus) == workers


@pytest.mark.parametrize(
    ("value", "parsed"), [("auto", "auto"), (" Auto ", "auto"), ("0", 0), ("3", 3), ("64", 64)]
)
def test_workers_setting_reads(value: str, parsed: object) -> None:
    assert Settings(WORKERS=value).workers == parsed  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["-1", "65", "two", "1.5", ""])
def test_workers_setting_refuses_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=r"WORKERS: .* is not a number of worker processes"):
        Settings(WORKERS=value)  # type: ignore[call-arg]
