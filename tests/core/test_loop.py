"""The event loop of long-running processes: uvloop where installed (it is a dependency)."""

from __future__ import annotations

import asyncio

import pytest

from core.loop import loop_name, run
from core.settings import Settings


async def _running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_and_uvloop_run_on_uvloop() -> None:
    pytest.importorskip("uvloop", reason="uvloop is a dependency except on Windows")
    assert loop_name("auto") == loop_name("uvloop") == "uvloop"
    assert run(_running_loop_module(), "auto") == "uvloop"


def test_asyncio_is_kept_when_asked_for() -> None:
    assert loop_name("asyncio") == "asyncio"
    assert run(_running_loop_module(), "asyncio") == "asyncio"


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="EVENT_LOOP"):
        Settings(EVENT_LOOP="trio")  # type: ignore[call-arg]
