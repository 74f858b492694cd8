"""The parts a process started, stopped in reverse order, each within a timeout.

``python scheduler.py`` adds each part to :class:`Parts` (over an
:class:`~contextlib.AsyncExitStack`) as soon as it is up; leaving the stack stops them
last started first, and a part that fails or hangs while stopping is logged and left,
so the next one still stops.  :func:`refusals` turns a part's refusal to start into one
ERROR line and :class:`Refused` (exit code 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

# The host process's own lines (scheduler.py logs as "fleetprobe" too).
log = logging.getLogger("fleetprobe")


class Refused(Exception):
    """A part refused to start (its reason already logged): exit code 3."""


async def _stop(name: str, closer: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Stop one part within ``timeout``; a failure is logged, and the next part still stops."""
    try:
        async with asyncio.timeout(timeout):
            await closer()
    except Exception as exc:
        log.warning("stop failed part=%s error=%r", name, exc)
    else:
        log.info("stopped %s", name)


class Parts:
    """The parts started so far, on an exit stack: stopped in reverse order, each within
    ``timeout``."""

    def __init__(self, stack: contextlib.AsyncExitStack, timeout: float) -> None:
        self._stack = stack
        self._timeout = timeout

    def add(
        self, name: str, closer: Callable[[], Awaitable[object]], timeout: float | None = None
    ) -> None:
        self._stack.push_async_callback(_stop, name, closer, timeout or self._timeout)


@contextlib.contextmanager
def refusals(*kinds: type[Exception]) -> Iterator[None]:
    """Turn a start-up refusal into one ERROR line and :class:`Refused`."""
    try:
        yield
    except kinds as exc:
        log.error("refusing to start: %s", exc)
        raise Refused from exc
