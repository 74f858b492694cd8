"""Running fleetprobe's own commands as real child processes in tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.procs import worker_command
from core.natsserver import free_port
from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=subprocess_env(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal, wait, then SIGKILL the whole process group; returns the exit code."""
        self.send(sig)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            code = self.popen.wait(timeout=5)
        self._out.close()
        return code


def taskiq_worker(env: dict[str, str], log: Path, *extra: str) -> Proc:
    return Proc(worker_command(*extra), env, log)


def scheduler_cmd(env: dict[str, str], log: Path, *extra: str) -> Proc:
    return Proc([sys.executable, str(ROOT / "scheduler.py"), *extra], env, log)


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_until(predicate: object, timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"process exited ({proc.popen.returncode}) while waiting for "
                f"{what}:\n{proc.output()[-3000:]}"
            )
        if time.monotonic() > deadline:
            tail = proc.output()[-3000:] if proc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.1)


class Fleetprobe:
    """``python scheduler.py`` that can be stopped and started again on the same ports,
    data dir and database."""

    def __init__(self, tmp_path: Path, *args: str, **extra: str) -> None:
        self.args = args  # scheduler.py's flags (--no-scheduler, ...)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp_path
        self.env = {
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}",
            "NATS_DATA_DIR": str(tmp_path / "data"),
            "WEB_PORT": str(self.port),
            "EMBEDDED_NATS": "true",
            "RESULT_FLUSH_MS": "2",
            "SCHEDULER_RESYNC_SECONDS": "1",
            **extra,
        }
        self.runs = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.runs += 1
        self.proc = scheduler_cmd(self.env, self.tmp / f"scheduler-{self.runs}.log", *self.args)
        proc = self.proc
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)

    def stop(self) -> None:
        if self.proc is not None:
            assert self.proc.stop(signal.SIGTERM, timeout=20) == 0, self.proc.output()[-3000:]
            self.proc = None

    def post(self, path: str, body: object) -> dict[str, object]:
        answer: dict[str, object] = self.call("POST", path, body)
        return answer

    def call(self, method: str, path: str, body: object = None) -> Any:
        """The JSON answer of ``method path`` (None for a 204)."""
        headers = {"Content-Type": "application/json"}
        if "API_TOKEN" in self.env:
            headers["Authorization"] = f"Bearer {self.env['API_TOKEN']}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return json.loads(text) if text else None
