"""Logging set-up: one line per event, ``key=value`` context in the message."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that write a line per item (per task, per scheduled job): below DEBUG they are
# raised to WARNING, so their records are not even built (taskiq's "Executing task" line
# alone cost ~3 % of a saturated worker's CPU, docs/performance.md).  Their few
# lifecycle lines are said by fleetprobe itself (jobs/queue/broker.py "listening ...").
_PER_ITEM = ("taskiq.receiver.receiver",)
# Lines of others that are per item, dropped by a filter (their loggers say more).
_PER_ITEM_LINES = (("apscheduler.scheduler", "Added job"),)


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; quieten chatty libraries.

    A host that configured logging already (``taskiq worker`` does, with its own format)
    keeps its handler: adding ours would print every line twice."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    # FORMAT names no file or line: skip the stack walk every record pays for them (the
    # logging HOWTO's "Optimization" advice; visible in a saturated worker's profile).
    logging._srcfile = None  # type: ignore[attr-defined]
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if root.level > logging.DEBUG:
        for name in _PER_ITEM:
            logging.getLogger(name).setLevel(logging.WARNING)
        for name, prefix in _PER_ITEM_LINES:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _DropPrefix) for f in logger.filters):
                logger.addFilter(_DropPrefix(prefix))


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)
