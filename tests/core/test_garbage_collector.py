"""The collector's set-up for long-running processes (core/garbage_collector.py).

``gc.freeze`` lasts as long as the process, so it runs in a child interpreter, never in
the test process."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from core import garbage_collector
from core.settings import Settings


@pytest.fixture
def thresholds_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_sets_the_three_thresholds(thresholds_restored: None) -> None:
    garbage_collector.tune((12_345, 6, 7))
    assert gc.get_threshold() == (12_345, 6, 7)


def test_freeze_start_up_collects_then_freezes_what_is_alive() -> None:
    code = (
        "import gc, logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "from core import garbage_collector\n"
        "gc.disable()  # only the call under test collects\n"
        "class Node: pass\n"
        "kept = [Node() for _ in range(1000)]\n"
        "a, b = Node(), Node(); a.other, b.other = b, a; del a, b  # a cycle, garbage\n"
        "assert gc.get_freeze_count() == 0\n"
        "garbage_collector.freeze_start_up()\n"
        "print('frozen', gc.get_freeze_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("start-up objects frozen"))
    fields = dict(part.split("=") for part in line.split()[3:])
    assert int(fields["collected"]) >= 2  # the two nodes' cycle (and their dicts)
    frozen = int(fields["objects"])
    assert frozen > 1000  # what the interpreter built, and the kept nodes
    assert f"frozen {frozen}" in out.splitlines()
    assert fields["gc_thresholds"] == ",".join(map(str, gc.get_threshold()))


@pytest.mark.parametrize(
    ("given", "thresholds"),
    [
        (None, (10_000, 50, 100)),  # the default
        ("700,10,10", (700, 10, 10)),  # CPython's own
        (" 5000 , 20, 30 ", (5000, 20, 30)),
    ],
)
def test_gc_thresholds_setting(given: str | None, thresholds: tuple[int, int, int]) -> None:
    env = {} if given is None else {"GC_THRESHOLDS": given}
    assert Settings(**env).gc_thresholds == thresholds  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["700,10", "700,10,10,10", "0,10,10", "a,b,c", "700,10,-1"])
def test_gc_thresholds_refused_with_the_setting_named(given: str) -> None:
    with pytest.raises(ValidationError, match="GC_THRESHOLDS"):
        Settings(GC_THRESHOLDS=given)  # type: ignore[call-arg]
