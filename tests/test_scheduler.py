"""`python scheduler.py` as a user runs it: embedded nats-server, database, scheduler,
in-process worker and web app; SIGINT stops it all and leaves no child behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from core.natsserver import free_port, is_reachable
from core.settings import Settings
from tests.processes import ROOT, scheduler_cmd, wait_until

pytestmark = pytest.mark.slow


def test_help_explains_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scheduler.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in (
        "--no-web",
        "--no-worker",
        "--no-scheduler",
        "--no-embedded-nats",
        "--workers",
        "--host",
        "--port",
    ):
        assert flag in out


def embedded_env(tmp_path: Path, db: Path, web_port: int, **extra: str) -> dict[str, str]:
    """`scheduler.py` as on a fresh machine: its own NATS (embedded, free port), SQLite file
    and web port, all under ``tmp_path``."""
    return {
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "NATS_DATA_DIR": str(tmp_path / "data"),
        "WEB_PORT": str(web_port),
        "EMBEDDED_NATS": "true",
        **extra,
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose once reaped or defunct.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_scheduler_runs_everything_and_stops_cleanly_on_sigint(
    tmp_path: Path, http_target: str
) -> None:
    web_port = free_port()
    db = tmp_path / "monitoring.db"
    # WORKERS as a user has it (the tests' environment sets 0): auto, the cores less one.
    env = embedded_env(
        tmp_path, db, web_port, SCHEDULER_RESYNC_SECONDS="1", RESULT_FLUSH_MS="2", WORKERS="auto"
    )
    proc = scheduler_cmd(env, tmp_path / "scheduler.log")
    try:
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)
        workers = Settings(WORKERS="auto").worker_processes  # type: ignore[call-arg]
        assert f"worker_processes={workers}" in proc.output()
        # The in-process worker and each worker process listen on the one consumer.
        wait_until(
            lambda: proc.output().count("listening stream=") == workers + 1, 60, "workers", proc
        )
        # The collector is set for a server in every process, and start-up frozen
        # (core/garbage_collector.py).
        assert proc.output().count("start-up objects frozen") == workers + 1
        assert proc.output().count("gc_thresholds=10000,50,100") == workers + 1
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 1 + 2 * workers  # nats-server; taskiq's parent and child each
        # uvloop is a dependency (on Linux and macOS): the default loop is uvloop.
        assert "fleetprobe running loop=uvloop" in proc.output()
        match = re.search(r"embedded nats-server started pid=(\d+)", proc.output())
        assert match, proc.output()
        nats_pid = int(match.group(1))
        assert _alive(nats_pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health", timeout=5) as resp:
            assert resp.status == 200

        # A device added behind the API's back is picked up by the periodic resync.
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO devices (name, address, is_active, interval_seconds, "
                "timeout_seconds, created_at, updated_at) VALUES (?, ?, 1, 1, 2, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                ("target", f"{http_target}/ok"),
            )

        def stored() -> bool:
            with sqlite3.connect(db) as conn:
                return bool(
                    conn.execute(
                        "SELECT count(*) FROM check_results WHERE status_up = 1"
                    ).fetchone()[0]
                )

        wait_until(stored, 30, "a stored result", proc)
    finally:
        code = proc.stop(signal.SIGINT, timeout=15)
    output = proc.output()
    assert code == 0, output[-3000:]
    assert "stopped scheduler" in output and "embedded nats-server stopped" in output
    assert not _alive(nats_pid)
    assert not [c.pid for c in children if _alive(c.pid)]  # no worker process left either
    assert not is_reachable(env["NATS_URL"])
    assert (tmp_path / "data" / "nats").is_dir()  # JetStream store under NATS_DATA_DIR


def test_a_taken_web_port_stops_everything_with_a_clear_error(tmp_path: Path) -> None:
    web_port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", web_port))
    taken.listen(1)
    env = embedded_env(tmp_path, tmp_path / "m.db", web_port)
    proc = scheduler_cmd(env, tmp_path / "scheduler.log")
    try:
        code = proc.popen.wait(timeout=60)
    finally:
        proc.stop()
        taken.close()
    output = proc.output()
    assert code == 3, output[-3000:]
    assert f"cannot listen on 127.0.0.1:{web_port}" in output
    assert "Traceback" not in output and "CancelledError" not in output
    # Checked before anything else starts: no NATS, no database, no scheduler.
    assert "embedded nats-server started" not in output, output[-3000:]
    assert "database ready" not in output and "queue ready" not in output
    assert not is_reachable(env["NATS_URL"])
