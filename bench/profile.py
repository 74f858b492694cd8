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

from bench.procs import Proc


@contextlib.contextmanager
def recording(pid: int, out: Path, enabled: bool) -> Iterator[None]:
    """Record ``pid`` with py-spy (collapsed stacks in ``out``) while the block runs."""
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
    where = where.split("site-packages/")[-1].split("/work/main/")[-1]
    where = where.rsplit(":", 1)[0]
    return f"{name} ({where})"
