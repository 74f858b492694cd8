"""SIGINT/SIGTERM stop every process within SHUTDOWN_GRACE_SECONDS in every state,
connecting included: here nothing answers at NATS_URL.  A process waiting for NATS says
so once, then ever more rarely with a count (never a line a second per connection)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.natsserver import free_port
from tests.conftest import isolated_env
from tests.processes import Proc, scheduler_cmd, taskiq_worker, wait_until
from tests.test_scheduler import _alive

pytestmark = pytest.mark.slow

GRACE_S = 3


def nobody_env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(
        f"nats://127.0.0.1:{free_port()}",
        tmp_path,
        SHUTDOWN_GRACE_SECONDS=str(GRACE_S),
        WEB_PORT=str(free_port()),
    )


def stops_cleanly(proc: Proc, sig: int) -> int:
    """Send ``sig``; the exit code, failing (after SIGKILL) when it outlives the grace."""
    proc.send(sig)
    try:
        return proc.popen.wait(timeout=GRACE_S + 5)
    except subprocess.TimeoutExpired as exc:
        proc.stop(signal.SIGKILL)
        raise AssertionError(f"running after {GRACE_S + 5}s:\n{proc.output()[-3000:]}") from exc


def waiting_is_said_rarely(output: str) -> None:
    # The first failure is said at once; the next line comes after 2 s with a count.
    assert "unavailable error=ConnectionRefusedError" in output, output[-3000:]
    counted = [int(n) for n in re.findall(r"still unavailable failures=(\d+)", output)]
    assert counted and max(counted) >= 3, output[-3000:]
    assert "nats error conn=" not in output  # the old line-a-second


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_taskiq_worker_waiting_for_nats_stops_on_a_signal(tmp_path: Path, sig: int) -> None:
    # Two children, as `taskiq worker worker:broker` runs by default.
    proc = taskiq_worker(nobody_env(tmp_path), tmp_path / "worker.log", "--workers", "2")
    try:
        wait_until(
            lambda: proc.output().count("still unavailable failures=") >= 2,
            60,
            "both children waiting for NATS",
            proc,
        )
        children = [
            int(p) for p in re.findall(r"Started process worker-\d with pid (\d+)", proc.output())
        ]
        assert len(children) == 2
        code = stops_cleanly(proc, sig)
    finally:
        proc.stop()
    output = proc.output()
    assert code == 0, output[-3000:]
    assert not any(_alive(pid) for pid in children), output[-3000:]
    assert output.count("stopped while starting") == 2, output[-3000:]
    assert "Traceback" not in output
    waiting_is_said_rarely(output)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_scheduler_waiting_for_nats_stops_on_a_signal(tmp_path: Path, sig: int) -> None:
    proc = scheduler_cmd(nobody_env(tmp_path), tmp_path / "scheduler.log", "--no-embedded-nats")
    try:
        wait_until(
            lambda: "still unavailable failures=" in proc.output(), 60, "waiting for NATS", proc
        )
        code = stops_cleanly(proc, sig)
    finally:
        proc.stop()
    output = proc.output()
    assert code == 0, output[-3000:]
    assert "stopped while starting" in output and "stopped database" in output
    assert "Traceback" not in output
    waiting_is_said_rarely(output)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_recorder_simulator_waiting_for_nats_stops_on_a_signal(
    tmp_path: Path, sig: int
) -> None:
    # Before, it ignored both until its 10 s connect timeout ran out (then exit 1).
    simulator = [sys.executable, "-m", "jobs.recorder.simulator"]
    proc = Proc(simulator, nobody_env(tmp_path), tmp_path / "simulator.log")
    try:
        wait_until(lambda: " unavailable error=" in proc.output(), 60, "waiting for NATS", proc)
        code = stops_cleanly(proc, sig)
    finally:
        proc.stop()
    output = proc.output()
    assert code == 0 and "stopped while connecting" in output, output[-3000:]
    assert "cannot connect" not in output and "Traceback" not in output


def test_the_recorder_cli_waiting_for_nats_stops_on_ctrl_c_without_a_traceback(
    tmp_path: Path,
) -> None:
    cli = [sys.executable, "-m", "jobs.recorder", "status"]
    proc = Proc(cli, nobody_env(tmp_path), tmp_path / "cli.log")
    try:
        wait_until(lambda: " unavailable error=" in proc.output(), 60, "waiting for NATS", proc)
        code = stops_cleanly(proc, signal.SIGINT)
    finally:
        proc.stop()
    output = proc.output()
    assert code == 130 and "interrupted before a reply" in output, output[-3000:]
    assert "Traceback" not in output


def test_a_malformed_nats_url_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    env = nobody_env(tmp_path) | {"NATS_URL": "nats://127.0.0.1:4222,nats://127.0.0.1:42x"}
    # No --max-fails (taskiq's default restarts a child for ever): the worker stops by
    # itself, each of its two children saying why once.
    proc = taskiq_worker(env, tmp_path / "worker.log", "--workers", "2")
    try:
        code = proc.popen.wait(timeout=60)
    finally:
        proc.stop()
    output = proc.output()
    lines = [x for x in output.splitlines() if "invalid settings" in x]
    assert code == 0 and 1 <= len(lines) <= 2, output[-3000:]
    assert lines[0].endswith(
        "invalid settings: NATS_URL: 'nats://127.0.0.1:42x' has port '42x', not a number 1-65535"
    )
    assert "Traceback" not in output
