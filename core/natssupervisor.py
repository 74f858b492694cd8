"""The embedded nats-server's life in ``python scheduler.py``: started when nothing answers,
watched while we run, restarted when it dies, never left behind, never adopted by mistake.

- **Supervision** (:class:`NatsSupervisor`): the child is reaped as soon as it exits;
  one ERROR says how (exit code or signal) with the tail of its log; it is started again
  on the same port and the same store (queued tasks survive: file storage), with backoff
  (0.5 s doubling to 30 s) while it keeps failing.  ``restarts`` and ``exits`` count it.
- **Dies with us**: on Linux the child asks for SIGTERM when we die, even by SIGKILL
  (``PR_SET_PDEATHSIG``, :func:`core.natsserver.die_with_parent_hook`).
- **Pid file** ``NATS_DATA_DIR/nats-server.pid``: where PDEATHSIG is not available (or
  the orphan predates it), the next start finds the server a dead run left behind,
  stops it and says so (:func:`reclaim_orphan`), instead of silently using it for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from core.natsserver import (
    EmbeddedNats,
    auth_args,
    is_reachable,
    ready_or_exited,
    start_nats_server,
)
from core.natsurl import host_port, redact
from core.settings import Settings

log = logging.getLogger(__name__)

PID_FILE = "nats-server.pid"
RESTART_FIRST_DELAY_SECONDS = 0.5
RESTART_MAX_DELAY_SECONDS = 30.0
READY_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.25


def exit_status(returncode: int) -> str:
    """``-15`` -> ``signal=SIGTERM``; ``1`` -> ``code=1``."""
    if returncode < 0:
        try:
            return f"signal={signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal={-returncode}"
    return f"code={returncode}"


def restart_delay(failures: int) -> float:
    """Backoff before restart attempt ``failures`` (0-based): 0.5, 1, 2, ... 30 s."""
    return float(min(RESTART_MAX_DELAY_SECONDS, RESTART_FIRST_DELAY_SECONDS * 2**failures))


@dataclass(frozen=True)
class PidRecord:
    pid: int
    parent: int
    store: str


def write_pid_file(path: Path, server: EmbeddedNats) -> None:
    record = {"pid": server.pid, "parent": os.getpid(), "store": str(server.store_dir)}
    path.write_text(json.dumps(record) + "\n")


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        raw = json.loads(path.read_text())
        return PidRecord(int(raw["pid"]), int(raw["parent"]), str(raw["store"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _process_info(pid: int) -> tuple[int, str] | None:
    """(parent pid, command line) of a live, non-zombie process; None when gone."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        return int(fields[1]), cmdline
    try:  # no /proc (macOS, BSD): ask ps
        out = subprocess.run(
            ["ps", "-o", "ppid=,stat=,command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split(None, 2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if len(out) < 3 or out[1].startswith("Z"):
        return None
    return int(out[0]), out[2]


def reclaim_orphan(pid_file: Path, store_dir: Path, timeout: float = 5.0) -> int | None:
    """Stop the embedded server a previous run left running (its parent is gone);
    returns its pid, or None when there was none.  A server whose parent still runs (a
    second scheduler.py on this data dir) is left alone."""
    record = read_pid_file(pid_file)
    if record is None:
        return None
    info = _process_info(record.pid)
    if info is None or "nats-server" not in info[1] or str(store_dir) not in info[1]:
        pid_file.unlink(missing_ok=True)  # stale: that server is gone (or the pid reused)
        return None
    ppid, _ = info
    if ppid == record.parent and _process_info(record.parent) is not None:
        log.info(
            "the embedded nats-server pid=%d belongs to a running process pid=%d; using it",
            record.pid,
            record.parent,
        )
        return None
    log.warning(
        "stopping an orphaned embedded nats-server pid=%d store=%s left by a previous run "
        "(its parent pid=%d is gone); a new one replaces it on the same store",
        record.pid,
        store_dir,
        record.parent,
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _process_info(record.pid) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return record.pid


def start_embedded(settings: Settings, allow: bool) -> EmbeddedNats | None:
    """The embedded server, when ``NATS_URL`` is one server nobody answers at and it is
    allowed; else None (the clients wait for the URL)."""
    data = Path(settings.nats_data_dir)
    servers = settings.nats_servers
    embedded_ok = allow and settings.embedded_nats and len(servers) == 1
    if embedded_ok:
        reclaim_orphan(data / PID_FILE, data / "nats")
    if is_reachable(settings.nats_url):
        log.info("using NATS at %s", redact(settings.nats_url))
        return None
    if not embedded_ok:
        why = "a cluster list" if len(servers) > 1 else "embedded server disabled"
        log.warning("nothing answers at %s; waiting for it (%s)", redact(settings.nats_url), why)
        return None
    host, port = host_port(servers[0])
    data.mkdir(parents=True, exist_ok=True)
    server = start_nats_server(
        host,
        port,
        data / "nats",
        log_file=data / "nats-server.log",
        extra_args=auth_args(servers[0]),
        sync_interval=settings.nats_sync_interval,
        die_with_parent=True,
    )
    write_pid_file(data / PID_FILE, server)
    return server


def start_supervised(settings: Settings, allow: bool) -> NatsSupervisor | None:
    """:func:`start_embedded`, watched by a started :class:`NatsSupervisor` that keeps its
    pid file; None when no server was started."""
    server = start_embedded(settings, allow)
    if server is None:
        return None
    supervisor = NatsSupervisor(server, Path(settings.nats_data_dir) / PID_FILE)
    supervisor.start()
    return supervisor


class NatsSupervisor:
    """Watches an embedded server from the event loop (the main thread: PDEATHSIG follows
    the forking thread); restarts it when it exits unasked."""

    def __init__(self, server: EmbeddedNats, pid_file: Path | None = None) -> None:
        self.server = server
        self.pid_file = pid_file
        self.exits = 0
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="nats-supervisor")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            code = self.server.process.poll()  # reaps it: no <defunct> left
            if code is None:
                continue
            self.exits += 1
            log.error(
                "embedded nats-server exited unexpectedly pid=%d %s exits=%d; restarting "
                "on the same store=%s; log tail: %s",
                self.server.pid,
                exit_status(code),
                self.exits,
                self.server.store_dir,
                self.server.log_tail() or "(empty)",
            )
            await self._restart()

    async def _restart(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(restart_delay(failures))
            self.server.respawn()
            try:
                deadline = time.monotonic() + READY_WAIT_SECONDS
                while not ready_or_exited(self.server):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"not accepting within {READY_WAIT_SECONDS:g}s")
                    await asyncio.sleep(0.05)
            except RuntimeError as exc:
                failures += 1
                await asyncio.to_thread(self.server.stop)
                log.error(
                    "embedded nats-server restart failed attempt=%d retry_in_s=%.1f error=%s",
                    failures,
                    restart_delay(failures),
                    exc,
                )
                continue
            self.restarts += 1
            if self.pid_file is not None:
                write_pid_file(self.pid_file, self.server)
            log.warning(
                "embedded nats-server restarted pid=%d url=%s restarts=%d",
                self.server.pid,
                self.server.url,
                self.restarts,
            )
            return

    async def stop(self) -> None:
        """Stop watching, then stop the server (SIGTERM, then SIGKILL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.server.stop)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        log.info("embedded nats-server supervisor exits=%d restarts=%d", self.exits, self.restarts)
