"""The retention job: prunes old results and rollups (:mod:`storage.retention`), run by the
scheduler that holds the leader lease only, every ``RETENTION_INTERVAL_SECONDS``.

One process prunes at a time (the lease), so two never race over the same rows; a run
that fails is logged and the next one starts over (a delete is idempotent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from storage.retention import Pruned, prune
from storage.types import utcnow

log = logging.getLogger(__name__)


class RetentionJob:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        is_leader: Callable[[], bool],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.is_leader = is_leader
        self.clock = clock
        self.runs = 0

    async def run(self) -> Pruned | None:
        """One pass; None when this process does not lead (or the run failed)."""
        if not self.is_leader():
            return None
        s = self.settings
        t0 = time.perf_counter()
        try:
            pruned = await prune(
                self.engine,
                self.clock(),
                retention_days=s.retention_days,
                rollup_retention_days=s.rollup_retention_days,
                batch=s.retention_batch,
            )
        except Exception as exc:  # the next run starts over
            log.warning("retention run failed error=%r", exc)
            return None
        self.runs += 1
        log.info(
            "retention checks_deleted=%d rollups_deleted=%d transactions=%d "
            "retention_days=%d rollup_retention_days=%d seconds=%.2f",
            pruned.checks,
            pruned.rollups,
            pruned.batches,
            s.retention_days,
            s.rollup_retention_days,
            time.perf_counter() - t0,
        )
        return pruned
