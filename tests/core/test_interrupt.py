"""core.interrupt.stop_taskiq_parent: only a ``taskiq worker`` child (a multiprocessing
child named ``worker-N``) stops its parent, and only the first of its siblings does (a
second SIGTERM at once can hang taskiq's parent); anything else is left alone."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from core.interrupt import STOP_MARKER, claim_parent_stop, stop_taskiq_parent


def child(queue: multiprocessing.Queue[int | None]) -> None:
    queue.put(stop_taskiq_parent())


@pytest.fixture(autouse=True)
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stop markers of this test's children in a folder of its own (forked children
    inherit it), not the machine's temp folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def sigterms() -> Iterator[list[int]]:
    """SIGTERMs this process receives while the test runs (instead of dying of them)."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, before)


def run_child(name: str) -> int | None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[int | None] = context.Queue()
    process = context.Process(target=child, args=(queue,), name=name)
    process.start()
    answer = queue.get(timeout=30)
    process.join(timeout=30)
    return answer


def test_outside_a_multiprocessing_child_nothing_is_stopped(sigterms: list[int]) -> None:
    assert stop_taskiq_parent() is None
    assert sigterms == []


def test_a_child_not_named_like_taskiqs_leaves_its_parent_alone(sigterms: list[int]) -> None:
    assert run_child("helper-0") is None
    assert sigterms == []


def test_a_taskiq_worker_child_sends_its_parent_sigterm(sigterms: list[int]) -> None:
    assert threading.current_thread() is threading.main_thread()  # where handlers run
    assert run_child("worker-0") == multiprocessing.current_process().pid
    assert sigterms == [signal.SIGTERM]


def test_of_two_worker_children_only_the_first_stops_the_parent(
    sigterms: list[int], markers: Path
) -> None:
    assert run_child("worker-0") == multiprocessing.current_process().pid
    assert run_child("worker-1") == multiprocessing.current_process().pid
    deadline = time.monotonic() + 5
    while not sigterms and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # a second signal, had one been sent, has arrived by now
    assert sigterms == [signal.SIGTERM]
    assert len(list(markers.glob(f"{STOP_MARKER}*"))) == 1


def test_a_parent_is_claimed_once_and_a_gone_parents_marker_is_removed(markers: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = markers / f"{STOP_MARKER}{gone.stdout.strip()}-123"
    stale.touch()
    assert claim_parent_stop(os.getpid(), markers) is True
    assert claim_parent_stop(os.getpid(), markers) is False
    assert not stale.exists()
    assert [m.name.split("-")[3] for m in markers.glob(f"{STOP_MARKER}*")] == [str(os.getpid())]
