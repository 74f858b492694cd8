"""Logging set-up: one line per event, ``key=value`` context in the message."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; quieten chatty libraries."""
    root = logging.getLogger()
    if not any(getattr(h, "_fleetprobe", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._fleetprobe = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # FORMAT names no file or line: skip the stack walk every record pays for them (the
    # logging HOWTO's "Optimization" advice; visible in a saturated worker's profile).
    logging._srcfile = None  # type: ignore[attr-defined]
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A line per task or per job cost ~6 % of a saturated worker's CPU and seconds of a
    # 100,000-device start-up (docs/performance.md); at DEBUG they are kept.
    if root.level > logging.DEBUG:
        for name, prefix in _PER_ITEM:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _DropPrefix) for f in logger.filters):
                logger.addFilter(_DropPrefix(prefix))


_PER_ITEM = (
    ("taskiq.receiver.receiver", "Executing task"),
    ("apscheduler.scheduler", "Added job"),
)


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)
