"""The parts of a process stop last started first; one that fails or hangs while
stopping is logged and left, and the next still stops; a refusal to start is one line."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from core.parts import Parts, Refused, refusals


async def test_parts_stop_in_reverse_order_past_a_failure_and_a_hang(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []

    def closer(name: str) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stopped.append(name)
        if name == "broken":
            done.set_exception(RuntimeError("cannot"))
        elif name != "stuck":
            done.set_result(None)
        return done  # "stuck" never completes: its own timeout ends the wait

    caplog.set_level(logging.INFO, logger="fleetprobe")
    async with contextlib.AsyncExitStack() as stack:
        parts = Parts(stack, timeout=5.0)
        parts.add("database", lambda: closer("database"))
        parts.add("stuck", lambda: closer("stuck"), timeout=0.01)
        parts.add("broken", lambda: closer("broken"))
        parts.add("web", lambda: closer("web"))
        assert stopped == []  # nothing stops before the stack is left

    assert stopped == ["web", "broken", "stuck", "database"]
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetprobe"]
    assert lines == [
        "stopped web",
        "stop failed part=broken error=RuntimeError('cannot')",
        "stop failed part=stuck error=TimeoutError()",
        "stopped database",
    ]


def test_a_refusal_is_one_error_line_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(Refused) as raised, refusals(ValueError, KeyError):
        raise KeyError("schema")
    assert isinstance(raised.value.__cause__, KeyError)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "refusing to start: 'schema'")
    ]


def test_an_error_that_is_no_refusal_passes_through() -> None:
    with pytest.raises(OSError), refusals(ValueError):
        raise OSError("disk")
