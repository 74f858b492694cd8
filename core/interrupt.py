"""Stopping a process in every state, connecting included.

A process waiting for NATS (at start, nothing at ``NATS_URL``) is inside ``nats.connect``,
which retries for ever: a stop request must cancel that wait, not queue behind it.

- :func:`unless_stopped`: ``python scheduler.py`` races its start-up against its own
  stop event (set by its SIGINT/SIGTERM handlers).
- :func:`interruptible`: inside a host that owns the signals (``taskiq worker``'s
  children set a flag on SIGINT/SIGTERM and only look at it once listening), a
  start-up that is cancelled by SIGINT/SIGTERM; the host's own handler still runs.
- :func:`stop_taskiq_parent`: a ``taskiq worker`` child that refuses to start for good
  (invalid settings, another installation's queue, an old schema) stops its parent too,
  which would otherwise start it again every second for ever; one child per parent
  (:func:`claim_parent_stop`), as two signals at once can hang taskiq's parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A signal asked the process to stop while :func:`interruptible` waited."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


async def unless_stopped(
    work: Coroutine[Any, Any, T], stop: asyncio.Event
) -> tuple[bool, T | None]:
    """``(True, result)`` when ``work`` finished first; ``(False, None)`` when ``stop``
    was set first (``work`` is then cancelled and awaited)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return True, task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False, None


async def interruptible(work: Awaitable[T]) -> T:
    """Await ``work``; SIGINT/SIGTERM cancel it and raise :class:`Interrupted`.

    The handlers in place before are called too (a host's flag is still set), except
    Python's default SIGINT handler (its KeyboardInterrupt would be a traceback).  Outside
    the main thread signals cannot be caught: ``work`` is awaited as it is."""
    if threading.current_thread() is not threading.main_thread():
        return await work
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []
    previous: dict[int, Any] = {int(sig): signal.getsignal(sig) for sig in SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        loop.call_soon_threadsafe(task.cancel)
        before = previous.get(signum)
        if callable(before) and before is not signal.default_int_handler:
            before(signum, frame)

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def stop_taskiq_parent() -> int | None:
    """In a ``taskiq worker`` child, ask the parent to stop (SIGTERM: it stops the other
    children and exits); its pid, or None when this is no such child.

    taskiq restarts a child that exits, whatever its exit code, for ever by default
    (``--max-fails -1``): a refusal that a restart cannot cure would be logged every
    second or two, never ending.  taskiq's parent exits 0 after a SIGTERM."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    if not multiprocessing.current_process().name.startswith("worker-"):
        return None  # a multiprocessing child of something else: not ours to stop
    if not claim_parent_stop(parent.pid):
        return parent.pid  # a sibling refused first and stopped it
    with contextlib.suppress(ProcessLookupError):
        os.kill(parent.pid, signal.SIGTERM)
    return parent.pid


STOP_MARKER = "fleetprobe-taskiq-stop-"


def claim_parent_stop(parent_pid: int, directory: Path | None = None) -> bool:
    """Whether this child is the first of its siblings to stop ``parent_pid``.

    Only one SIGTERM may reach taskiq's parent: its handler puts into a multiprocessing
    queue, and a second signal arriving while the first handler holds the queue's lock
    (its first ``put`` starts a thread) deadlocks the parent for ever.  Children of one
    parent refuse together (same settings, same database), so the first to create the
    marker (``O_EXCL``, named by the parent's pid and start time: a reused pid is another
    parent) sends it; markers of parents that are gone are removed on the way."""
    directory = Path(tempfile.gettempdir()) if directory is None else directory
    marker = directory / f"{STOP_MARKER}{parent_pid}-{_start_time(parent_pid)}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return True  # no marker can be written here: stopping the parent matters more
    os.close(fd)
    for old in directory.glob(f"{STOP_MARKER}*"):
        pid = old.name.removeprefix(STOP_MARKER).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                old.unlink()
    return True


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
