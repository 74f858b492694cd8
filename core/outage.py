"""Rate-limited outage lines: one when a failure starts, one every ``every`` seconds with a
count while it lasts, one when it ends.

A loop that retries every second (nats-py's reconnects, a fetch, a kick) would otherwise
log a line a second per connection (123 WARNINGs in 40 s when the embedded server died).
Pure: the clock is an argument, so tests drive it with a table::

    >>> t = [0.0]
    >>> outage = OutageLog("nats conn=x", every=10, first=4, clock=lambda: t[0])
    >>> outage.failed("refused")   # the first failure is said at once
    'nats conn=x unavailable error=refused'
    >>> t[0] = 3; outage.failed("refused") is None
    True
    >>> t[0] = 4; outage.failed("refused")   # then after 4 s, 8 s, then every 10 s
    'nats conn=x still unavailable failures=3 for_s=4 error=refused'
    >>> t[0] = 12; outage.recovered()
    'nats conn=x back failures=3 after_s=12'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class OutageLog:
    """The lines to log for one thing that can be unavailable (pure; see the module)."""

    def __init__(
        self,
        what: str,
        every: float = 30.0,
        first: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``first``: the gap after the first line, doubling up to ``every`` (backing off);
        None: ``every`` from the start."""
        self.what = what
        self.every = every
        self.first = every if first is None else min(first, every)
        self.clock = clock
        self.failures = 0  # over the object's life
        self.outages = 0
        self._since: float | None = None
        self._last_said = 0.0
        self._gap = self.first
        self._count = 0  # in the current outage

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: object) -> str | None:
        """Count a failure; the line to log now, or None."""
        now = self.clock()
        self.failures += 1
        if self._since is None:
            self._since = self._last_said = now
            self._gap = self.first
            self.outages += 1
            self._count = 1
            return f"{self.what} unavailable error={error}"
        self._count += 1
        if now - self._last_said >= self._gap:
            self._last_said = now
            self._gap = min(self._gap * 2, self.every)
            return (
                f"{self.what} still unavailable failures={self._count} "
                f"for_s={now - self._since:.0f} error={error}"
            )
        return None

    def recovered(self) -> str | None:
        """End the outage; the line to log now, or None when there was none."""
        if self._since is None:
            return None
        line = f"{self.what} back failures={self._count} after_s={self.clock() - self._since:.0f}"
        self._since = None
        return line

    def log_failed(self, logger: logging.Logger, error: object) -> None:
        line = self.failed(error)
        if line is not None:
            logger.warning("%s", line)

    def log_recovered(self, logger: logging.Logger) -> None:
        line = self.recovered()
        if line is not None:
            logger.info("%s", line)
