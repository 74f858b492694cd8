"""Scenario (11), the leader's health sweep: what one ``HealthTracker.sweep`` costs over N
devices when nothing is due, the leading scheduler's pass every 10 s.

A fresh SQLite file per device count: N active devices (interval 60 s, timeout 5 s), each
with the health row the check writer leaves after a full window of 16 results, the last
one a minute before the sweep (up, nothing due).  The rows are written by the health
module's own ``health_write`` (``jobs.probe.health``), so they are what a running system stores.
CPU is the process's (``time.process_time``: the event loop and aiosqlite's thread) per
sweep, the median of R sweeps; every sweep must change nothing.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stats import table
from bench.system import prepare_db
from core.settings import Settings
from jobs.probe.conditions import Outcome
from jobs.probe.health import HealthTracker
from jobs.probe.state import Health, Observation, Thresholds, step
from storage.db import make_engine

INTERVAL = 60
TIMEOUT = 5.0


def _health_heard_until(last: datetime) -> Health:
    """A device up, with a full window of results one interval apart, the last at
    ``last``."""
    health = Health.new(last - timedelta(seconds=INTERVAL * 20))
    for n in range(16, -1, -1):
        at = last - timedelta(seconds=INTERVAL * n)
        health, _ = step(health, Observation(Outcome.UP, at, f"probe:{n}", None), Thresholds())
    return health


async def run_sweep(workdir: Path, counts: list[int], repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"repeat": repeat, "counts": {}}
    now = datetime.now(UTC)
    for count in counts:
        heard = _health_heard_until(now - timedelta(seconds=INTERVAL))
        url = await prepare_db(
            workdir / f"sweep-{count}.db", count, "http://127.0.0.1:1/", INTERVAL, TIMEOUT,
            health=heard,
        )  # fmt: skip
        settings = Settings(DATABASE_URL=url)  # type: ignore[call-arg]
        engine = make_engine(settings)
        tracker = HealthTracker()
        cpu_ms: list[float] = []
        wall_ms: list[float] = []
        try:
            await tracker.sweep(engine, settings, now)  # the pool's first connection
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                changed = await tracker.sweep(engine, settings, now)
                cpu_ms.append((time.process_time() - cpu) * 1000)
                wall_ms.append((time.perf_counter() - wall) * 1000)
                if changed:
                    raise RuntimeError(f"the sweep changed {changed} devices: nothing was due")
        finally:
            await engine.dispose()
        out["counts"][str(count)] = {
            "devices": count,
            "cpu_ms": round(statistics.median(cpu_ms), 1),
            "wall_ms": round(statistics.median(wall_ms), 1),
            "runs_cpu_ms": [round(v, 1) for v in cpu_ms],
            "core_pct_every_10s": round(statistics.median(cpu_ms) / 100, 2),
        }
    return out


def table_of(r: dict[str, Any]) -> str:
    rows = [
        [
            c["devices"],
            c["cpu_ms"],
            c["wall_ms"],
            " / ".join(f"{v:.1f}" for v in c["runs_cpu_ms"]),
            c["core_pct_every_10s"],
        ]
        for c in r["counts"].values()
    ]
    return (
        f"(11) the leader's health sweep, nothing due (median of {r['repeat']} sweeps, "
        "SQLite; a sweep runs every 10 s)\n"
        + table(rows, ["devices", "CPU ms", "wall ms", "runs (CPU ms)", "% of a core"])
    )
