"""Child processes that ``python scheduler.py`` keeps running beside itself (the worker
processes of ``--workers N``): started, watched, restarted, stopped in order, never left
behind.

- **Each in its own process group** (a new session): Ctrl-C in the terminal reaches only
  us, and we stop the children ourselves, first (:meth:`ChildSupervisor.stop`).  Stopping
  one is SIGTERM to it, a wait of ``stop_timeout`` seconds, then SIGKILL of its whole
  group (whatever it forked: ``taskiq worker`` runs its worker in a child of its own).
- **Restarted when it dies unasked**, with backoff (0.5 s doubling to 30 s,
  :func:`core.natssupervisor.restart_delay`) while it keeps dying soon after a start;
  a child that ran for ``STABLE_SECONDS`` starts the backoff afresh.  One ERROR says how
  it ended (exit code or signal), one WARNING when it is back; what it forked is stopped
  before the new one starts, so a restart never adds a consumer.
- **Dies with us** on Linux, even when we are SIGKILLed (``PR_SET_PDEATHSIG``,
  :func:`core.natsserver.die_with_parent_hook`): a ``taskiq worker`` parent then stops
  its own worker child as on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.natsserver import die_with_parent_hook
from core.natssupervisor import exit_status, restart_delay

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
STABLE_SECONDS = 60.0


def group_alive(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` still runs (zombies do not count: an
    orphan whose reaper is slow, or absent in a container, has stopped all the same)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc (macOS, BSD): zombies count there
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # After the command's closing parenthesis: state, ppid, pgrp, ...
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def poll_until(done: Callable[[], bool], timeout: float) -> bool:
    """Whether ``done()`` came true within ``timeout`` seconds (checked every 50 ms: a
    process's exit has no awaitable here)."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


@dataclass
class Child:
    """One slot: the process in it now, and how often it was started."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    starts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class ChildSupervisor:
    """``count`` copies of ``argv``, each watched from the event loop (the main thread:
    PDEATHSIG follows the forking thread) and restarted when it exits unasked."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        count: int,
        stop_timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.stop_timeout = stop_timeout
        self.env = env
        self.children = [Child(i + 1) for i in range(count)]
        self.exits = 0
        self.restarts = 0
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children if c.pid is not None]

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)
            child.task = asyncio.create_task(self._watch(child), name=f"{self.name}-{child.index}")
        log.info(
            "%s started count=%d pids=%s",
            self.name,
            len(self.children),
            ",".join(str(p) for p in self.pids),
        )

    def _spawn(self, child: Child) -> None:
        env = None if self.env is None else {**os.environ, **self.env}
        child.process = subprocess.Popen(
            self.argv,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),  # noqa: PLW1509 (see die_with_parent_hook)
        )
        child.started_at = time.monotonic()
        child.starts += 1

    async def _watch(self, child: Child) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            assert child.process is not None
            code = child.process.poll()  # reaps it: no <defunct> left
            if code is None:
                if child.failures and time.monotonic() - child.started_at > STABLE_SECONDS:
                    child.failures = 0
                continue
            if self._stopping:
                return
            self.exits += 1
            # What it forked (taskiq's worker child) goes with it, before a new one starts.
            await self._end_group(child.process.pid, signal.SIGTERM)
            delay = restart_delay(child.failures)
            child.failures += 1
            log.error(
                "%s %d exited unexpectedly pid=%d %s exits=%d; restarting in %.1fs",
                self.name,
                child.index,
                child.process.pid,
                exit_status(code),
                self.exits,
                delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self._spawn(child)
            self.restarts += 1
            log.warning(
                "%s %d restarted pid=%d restarts=%d",
                self.name,
                child.index,
                child.process.pid,
                self.restarts,
            )

    async def _end_group(self, pgid: int, first: int) -> None:
        """Signal the group, wait up to ``stop_timeout`` for it to empty, then SIGKILL."""
        signal_group(pgid, first)
        if not await poll_until(lambda: not group_alive(pgid), self.stop_timeout):
            log.warning("%s group=%d still running: SIGKILL", self.name, pgid)
            signal_group(pgid, signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM to every child at once; each gets ``stop_timeout`` seconds to finish
        (its running tasks, its hand-back), then its group is SIGKILLed."""
        self._stopping = True
        for child in self.children:
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task
                child.task = None
        running = [c.process for c in self.children if c.process is not None]
        for proc in running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

        def finished(proc: subprocess.Popen[bytes]) -> bool:
            # Reaped, and nothing it forked left in its group (taskiq's worker child).
            return proc.poll() is not None and not group_alive(proc.pid)

        await poll_until(lambda: all(finished(p) for p in running), self.stop_timeout)
        codes = []
        for proc in running:
            if not finished(proc):
                log.warning(
                    "%s pid=%d did not stop within %gs: SIGKILL of its group",
                    self.name,
                    proc.pid,
                    self.stop_timeout,
                )
                signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(proc.wait, 5)
            codes.append("?" if proc.returncode is None else exit_status(proc.returncode))
        log.info(
            "%s stopped count=%d exits=%d restarts=%d status=%s",
            self.name,
            len(running),
            self.exits,
            self.restarts,
            ",".join(codes),
        )
