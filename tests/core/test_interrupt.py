"""core.interrupt.stop_taskiq_parent: only a ``taskiq worker`` child (a multiprocessing
child named ``worker-N``) stops its parent; anything else is left alone."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from core.interrupt import stop_taskiq_parent


def child(queue: multiprocessing.Queue[int | None]) -> None:
    queue.put(stop_taskiq_parent())


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
