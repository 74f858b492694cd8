"""``--profile``: py-spy records a process while a scenario runs; the collapsed stacks
are summarised as the functions holding the most samples (inclusive and self)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.procs import ROOT, Proc


@contextlib.contextmanager
def recording(pid: int, out: Path, enabled: bool, subprocesses: bool = False) -> Iterator[None]:
    """Record ``pid`` with py-spy (collapsed stacks in ``out``) while the block runs; with
    ``subprocesses``, its Python children too (``python scheduler.py``'s worker processes),
    and in every case only threads holding the GIL (the Python code's own CPU, not C code
    that released it, such as socket and SQLite calls)."""
    beside = Path(sys.executable).parent / "py-spy"  # a venv's python run by its path
    binary = str(beside) if beside.exists() else shutil.which("py-spy")
    if not enabled or binary is None:
        yield
        return
    cmd = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(out),
    ]
    # Only samples holding the GIL: a thread waiting for it (or for work) would show at
    # whatever line it stopped on (httpx's Headers.items read 26 % without this), and the
    # main thread idle inside uvloop at a frame that had already returned (aiohttp's
    # ``BaseConnector._get`` at its ``def`` line: 6.7 % of an in-process profile).
    cmd.append("--gil")
    if subprocesses:
        cmd.append("--subprocesses")
    proc = Proc("py-spy", cmd, {}, out.with_suffix(".log"))
    try:
        yield
    finally:
        proc.popen.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=30)
        proc.stop()


def summarise(path: Path, top: int = 25) -> str:
    """The ``top`` frames by inclusive and by self samples, as text."""
    if not path.exists():
        return f"(no profile at {path})"
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return "(empty profile)"
    lines = [f"samples: {total}", "inclusive:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    where = where.split("site-packages/")[-1].split(f"{ROOT}/")[-1]
    where = where.rsplit(":", 1)[0]
    return f"{name} ({where})"


# Where a frame's own samples go, by the file the leaf frame is in (first match wins).
BUCKETS = (
    ("httpx's client layer", ("httpx/", "httpx_aiohttp/")),
    ("aiohttp (the GET)", ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    ("taskiq (receive, run, ack)", ("taskiq/", "taskiq_nats/")),
    ("NATS client", ("nats/",)),
    ("SQLAlchemy, aiosqlite, sqlite3", ("sqlalchemy/", "aiosqlite/", "sqlite3/", "sqlmodel/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("fleetprobe's own code", ("jobs/", "storage/", "web/", "core/", "worker.py", "scheduler.py")),
    ("web server, WebSocket", ("uvicorn/", "starlette/", "websockets/")),
    ("json, logging, other stdlib", ("json/", "logging/", "datetime", "uuid", "enum", "typing")),
    ("event loop (uvloop, asyncio)", ("uvloop/", "asyncio/")),
)


# Leaf frames that are a thread blocked in a C wait py-spy does not see as idle:
# aiosqlite's connection thread in ``tx.get()`` between statements.
IDLE_LEAVES = ("_connection_worker_thread (aiosqlite/core.py)",)


def _bucket(frame: str) -> str:
    where = frame.rpartition(" (")[2]
    for name, prefixes in BUCKETS:
        if any(where.startswith(p) for p in prefixes):
            return name
    return "other"


def summarise_tree(path: Path, top: int = 12) -> str:
    """A py-spy ``--subprocesses`` recording, per process and thread: the share of samples
    of each, where the event-loop threads' own samples go (by library), and their hottest
    frames.  Threads other than the main one are shown apart: aiosqlite's runs every
    statement (and waits for SQLite's fsync there) and otherwise waits for work, which
    py-spy counts as running (told apart here by its leaf frame)."""
    if not path.exists():
        return f"(no profile at {path})"
    threads: Counter[tuple[str, str]] = Counter()
    buckets: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        process = "?"
        while frames and frames[0].startswith("process "):  # parent;child;grandchild
            process = _process_label(frames.pop(0))
        short = [_short(f) for f in frames]
        main = not any(f.startswith("Thread._bootstrap ") for f in short)
        if main:
            kind = "main thread"
        elif short and short[-1].startswith(IDLE_LEAVES):
            kind = "aiosqlite's thread (mostly waiting for work, which py-spy counts)"
        else:
            kind = "other threads (SQLite statements, ...)"
        threads[(process, kind)] += count
        if main and short:
            buckets.setdefault(process, Counter())[_bucket(short[-1])] += count
            own.setdefault(process, Counter())[short[-1]] += count
    if not total:
        return "(empty profile)"
    lines = [f"samples: {total} (200 Hz)", "by process and thread:"]
    lines += [f"  {c / total:6.1%}  {p}, {t}" for (p, t), c in threads.most_common()]
    for process, counts in buckets.items():
        main_total = sum(counts.values())
        lines.append(f"{process}, main thread ({main_total} samples), own samples by library:")
        lines += [f"  {c / main_total:6.1%}  {b}" for b, c in counts.most_common()]
        lines.append("  hottest frames (self):")
        lines += [f"    {c / main_total:6.1%}  {f}" for f, c in own[process].most_common(top)]
    return "\n".join(lines)


def _process_label(frame: str) -> str:
    """``process 12:"python scheduler.py --workers 0"`` -> ``scheduler.py (pid 12)``."""
    pid = frame.split(":", 1)[0].removeprefix("process ")
    command = frame.partition(":")[2]
    if "taskiq" in command:
        return f"taskiq worker (pid {pid})"  # the worker child (its parent only waits)
    if "scheduler.py" in command:
        return f"scheduler.py (pid {pid})"
    return f"pid {pid}"
