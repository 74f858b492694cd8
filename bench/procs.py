"""Child processes of the benchmark: started in their own session, always stopped.

Every process the bench starts is registered here; :func:`stop_all` (called from
``finally`` and on SIGTERM/SIGINT) stops them by pid, newest first, SIGTERM then SIGKILL
of the process group.  :class:`Sampler` records CPU seconds and peak RSS of each one
(and its children: ``taskiq worker`` forks) with psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from jobs.queue.receiver import RECEIVER

ROOT = Path(__file__).resolve().parent.parent
_running: list[Proc] = []
_cleanups: list[Callable[[], None]] = []


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        full = dict(os.environ)
        full.update(env)
        full["PYTHONPATH"] = str(ROOT) + os.pathsep + full.get("PYTHONPATH", "")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=full,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _running.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str | tuple[str, ...], timeout: float) -> float:
        """Seconds since start when ``text`` (or one of them) appeared in the log; raises
        on exit/timeout."""
        texts = (text,) if isinstance(text, str) else text
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if any(t in out for t in texts):
                return time.perf_counter() - self.started
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.popen.returncode}) before {text!r}:\n"
                    f"{self.output()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {text!r} within {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Whatever is left of its group (taskiq's children) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._out.close()
        if self in _running:
            _running.remove(self)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def worker_command(*extra: str) -> list[str]:
    """One ``taskiq worker`` process on fleetprobe's broker with fleetprobe's receiver (as
    ``scheduler.py --workers N`` starts them: :data:`jobs.queue.receiver.RECEIVER`), quick to
    stop (the bench's and the tests' extra workers)."""
    return python(
        "-m", "taskiq", "worker", "worker:broker", "--workers", "1", "--shutdown-timeout", "3",
        "--receiver", RECEIVER,
        *extra,
    )  # fmt: skip


def on_stop(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` in :func:`stop_all`, after the processes (the nats-server)."""
    _cleanups.append(cleanup)


def stop_all() -> None:
    for proc in reversed(list(_running)):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)
    while _cleanups:
        with contextlib.suppress(Exception):
            _cleanups.pop()()


class Sampler:
    """Peak RSS and CPU seconds of named processes (with their children), sampled in a
    thread every ``period`` seconds."""

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        self._procs: dict[str, psutil.Process] = {}
        self._alone: set[str] = set()
        self._peak: dict[str, int] = {}
        self._cpu0: dict[str, float] = {}
        self._cpu_last: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._box0 = self._box_busy()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int, *, children: bool = True) -> None:
        """Sample ``pid`` (with its children unless ``children`` is False)."""
        with self._lock:
            proc = psutil.Process(pid)
            self._procs[name] = proc
            if not children:
                self._alone.add(name)
            self._peak[name] = 0
            cpu = self._cpu_of(proc)
            self._cpu0[name] = cpu
            self._cpu_last[name] = cpu

    def unwatch(self, name: str) -> None:
        with self._lock:
            for table in (self._procs, self._peak, self._cpu0, self._cpu_last):
                table.pop(name, None)  # type: ignore[attr-defined]

    def start(self) -> Sampler:
        self._thread.start()
        return self

    @staticmethod
    def _box_busy() -> float:
        """CPU seconds the whole machine spent busy (every process, ours or not)."""
        t = psutil.cpu_times()
        busy: float = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        return busy

    def mark(self) -> None:
        """Start a new measurement period: CPU and peak RSS count from now."""
        self._sample()
        with self._lock:
            self._box0 = self._box_busy()
            self._t0 = time.perf_counter()
            self._cpu0 = dict(self._cpu_last)
            self._peak = dict.fromkeys(self._peak, 0)
        self._sample()

    def _tree(self, proc: psutil.Process) -> list[psutil.Process]:
        if any(self._procs.get(name) is proc for name in self._alone):
            return [proc]
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return [proc]

    def _cpu_of(self, proc: psutil.Process) -> float:
        total = 0.0
        for p in self._tree(proc):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def _rss_of(self, proc: psutil.Process) -> int:
        total = 0
        for p in self._tree(proc):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _sample(self) -> None:
        with self._lock:
            for name, proc in self._procs.items():
                if not proc.is_running():
                    continue
                self._cpu_last[name] = max(self._cpu_last[name], self._cpu_of(proc))
                self._peak[name] = max(self._peak[name], self._rss_of(proc))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def box(self) -> dict[str, float]:
        """Since the last mark: how busy the machine was, and how much of it was not us
        (other people's processes on a shared box make every figure noisier)."""
        report = self.report()
        with self._lock:
            wall = max(time.perf_counter() - self._t0, 1e-9)
            busy = (self._box_busy() - self._box0) / wall * 100
        ours = sum(v["cpu_pct"] for v in report.values())
        return {"busy_pct": round(busy, 1), "others_pct": round(max(0.0, busy - ours), 1)}

    def report(self) -> dict[str, dict[str, Any]]:
        """Per process since the last mark: CPU seconds, share of one core, peak RSS MB."""
        self._sample()
        with self._lock:
            wall = max(time.perf_counter() - self._t0, 1e-9)
            return {
                name: {
                    "cpu_s": round(self._cpu_last[name] - self._cpu0[name], 2),
                    "cpu_pct": round((self._cpu_last[name] - self._cpu0[name]) / wall * 100, 1),
                    "peak_rss_mb": round(self._peak[name] / 2**20, 1),
                }
                for name in self._procs
            }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
