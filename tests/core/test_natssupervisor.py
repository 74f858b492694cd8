"""The embedded nats-server of `python scheduler.py`: supervised (reaped, one ERROR with
its exit status and log, restarted on the same store so queued tasks survive, counted),
and never left behind: it dies with a SIGKILLed scheduler (PR_SET_PDEATHSIG), and an
orphan named by the pid file is stopped and replaced, saying so, never adopted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import nats
import pytest

from core.natsserver import free_port, start_nats_server
from core.natssupervisor import PID_FILE
from tests.processes import Proc, scheduler_cmd, wait_until
from tests.test_scheduler import _alive, embedded_env

pytestmark = pytest.mark.slow


def post(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def nats_pid(proc: Proc, nth: int = 0) -> int:
    pids = re.findall(r"embedded nats-server (?:started|restarted) pid=(\d+)", proc.output())
    return int(pids[nth])


async def queued(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


def test_a_killed_embedded_server_is_reaped_reported_restarted_and_keeps_the_queue(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    env = embedded_env(tmp_path, tmp_path / "m.db", web_port, JOBS_STREAM="SUPERVISED")
    # --no-worker: the probe jobs stay queued, so the restarted server must still have them.
    proc = scheduler_cmd(env, tmp_path / "scheduler.log", "--no-worker")
    try:
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)
        first = nats_pid(proc)
        device = post(web_port, "/devices", {"name": "d", "address": "http://127.0.0.1:9/"})
        post(web_port, "/jobs/probe", {"device_ids": [device["id"]]})
        # The leader's first probe of the new device and the manual one: both stay queued.
        wait_until(
            lambda: asyncio.run(queued(env["NATS_URL"], "SUPERVISED")) == 2, 10, "queued", proc
        )

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "embedded nats-server restarted" in proc.output(), 30, "restart", proc)
        assert not _alive(first)  # reaped: no <defunct> left
        second = nats_pid(proc, 1)
        assert second != first and _alive(second)
        assert asyncio.run(queued(env["NATS_URL"], "SUPERVISED")) == 2  # the same store
        wait_until(
            # --no-worker: two connections (the queue's, the events')
            lambda: proc.output().count("nats reconnected") >= 2,
            30,
            "clients back",
            proc,
        )
        code = proc.stop(signal.SIGINT, timeout=20)
    finally:
        proc.stop()
    output = proc.output()
    assert code == 0, output[-3000:]
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert f"pid={first} signal=SIGKILL" in errors[0] and "log tail: " in errors[0]
    assert "(empty)" not in errors[0]  # the server's own last lines
    assert "supervisor exits=1 restarts=1" in output
    # One line per connection when the outage starts, one when it ends.
    assert output.count(" unavailable error=") <= 2, output[-3000:]
    assert "Traceback" not in output and "stop failed" not in output
    assert "Unclosed" not in output
    assert not _alive(second)
    assert not (tmp_path / "data" / PID_FILE).exists()


def test_the_embedded_server_dies_with_a_sigkilled_scheduler(tmp_path: Path) -> None:
    env = embedded_env(tmp_path, tmp_path / "m.db", free_port())
    proc = scheduler_cmd(env, tmp_path / "scheduler.log", "--no-web")
    try:
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)
        server = nats_pid(proc)
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)
        wait_until(lambda: not _alive(server), 15, "the server to follow its parent")
    finally:
        proc.stop()


def test_an_orphan_named_by_the_pid_file_is_stopped_and_replaced_saying_so(
    tmp_path: Path,
) -> None:
    env = embedded_env(tmp_path, tmp_path / "m.db", free_port())
    data = tmp_path / "data"
    port = int(env["NATS_URL"].rsplit(":", 1)[1])
    # What a run that died without PDEATHSIG leaves: its server, on its port and store,
    # and a pid file naming a parent that is gone.
    orphan = start_nats_server("127.0.0.1", port, data / "nats")
    gone = subprocess.Popen(["true"])
    gone.wait()
    (data / PID_FILE).write_text(
        json.dumps({"pid": orphan.pid, "parent": gone.pid, "store": str(data / "nats")})
    )
    proc = scheduler_cmd(env, tmp_path / "scheduler.log", "--no-web")
    try:
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)
        output = proc.output()
        assert f"stopping an orphaned embedded nats-server pid={orphan.pid}" in output
        assert "using NATS at" not in output  # not adopted
        assert orphan.process.poll() is not None
        assert nats_pid(proc) != orphan.pid
        record = json.loads((data / PID_FILE).read_text())
        assert record["pid"] == nats_pid(proc) and record["parent"] == proc.pid
    finally:
        proc.stop(signal.SIGINT)
        orphan.stop()
    assert proc.popen.returncode == 0, proc.output()[-3000:]
