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
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
