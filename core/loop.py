"""The event loop a long-running process runs on: uvloop where installed, else asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from core.settings import EventLoop

T = TypeVar("T")


def loop_name(choice: EventLoop) -> Literal["uvloop", "asyncio"]:
    """``uvloop`` or ``asyncio``: what :func:`run` will use for ``choice``.

    Raises ``RuntimeError`` when ``uvloop`` is asked for and not installed."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """Run ``main`` to completion on the chosen loop (as ``asyncio.run`` does)."""
    if loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
