"""Scenario (6), the uptime query: D devices x 30 days of 5-minute results (1,000 devices:
~8.6 million rows) generated through SQLAlchemy Core executemany into a fresh SQLite file,
their rollups built by the check writer's own code (``storage.rollups``, in bulk), state
changes and health rows beside them; then ``storage.uptime.device_uptime`` (what ``GET
/devices/{id}/uptime`` runs, windows 24h,7d,30d), ``device_statuses`` (``GET
/status``, a page of 100) and ``uptime_percents`` (the 30-day uptime of the status page
and badges, 100 devices) timed over many calls on the async engine the app uses.
"""

from __future__ import annotations

import operator
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert

from bench.stats import percentile
from bench.system import prepare_db
from core.settings import Settings
from storage.db import make_engine
from storage.models import CheckResult, DeviceHealth, StateChange
from storage.rollups import add_to_rollups_sync
from storage.uptime import device_statuses, device_uptime, uptime_percents
from storage.uptime_maths import parse_window, parse_windows

CHECKS = CheckResult.__table__  # type: ignore[attr-defined]
CHANGES = StateChange.__table__  # type: ignore[attr-defined]
HEALTH = DeviceHealth.__table__  # type: ignore[attr-defined]
STEP = timedelta(minutes=5)
# How SQLAlchemy's SQLite DateTime stores a (UTC, naive) time.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _outcomes(rnd: random.Random, n: int) -> list[str]:
    """A device's results: up, with an outage (6-36 slots) and a slow spell about every
    three days."""
    out = ["up"] * n
    i = rnd.randint(0, 864)
    while i < n:
        kind = rnd.choice(("down", "degraded"))
        length = rnd.randint(6, 36)
        out[i : i + length] = [kind] * min(length, n - i)
        i += length + rnd.randint(400, 1300)
    return out


def generate(path: Path, devices: int, days: int, end: datetime) -> dict[str, Any]:
    """Fill a database made by :func:`bench.system.prepare_db`; what was made, how fast."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _fast(dbapi_conn: Any, _record: Any) -> None:
        # A throw-away file: no fsync, no rollback journal while loading.
        dbapi_conn.execute("PRAGMA synchronous=OFF")
        dbapi_conn.execute("PRAGMA journal_mode=OFF")

    rnd = random.Random(6)
    n = int(timedelta(days=days) / STEP)
    start = end - n * STEP
    # Core's insert compiled once, run as a DB-API executemany of plain tuples: the type
    # processing of one dict per row would make loading 8.6 million rows take minutes.
    columns = ["device_id", "status_up", "outcome", "latency_ms", "checked_at", "run_key",
               "source", "in_maintenance"]  # fmt: skip
    compiled = insert(CHECKS).compile(dialect=engine.dialect, column_keys=columns)
    sql, order = str(compiled), compiled.positiontup or []
    values = operator.itemgetter(*("stamp" if k == "checked_at" else k for k in order))
    rows_total = changes_total = rollups_total = 0
    t0 = time.perf_counter()
    t_rollups = 0.0
    with engine.begin() as conn:
        # Every device on the same slots (phases do not matter to a per-device query):
        # each slot's time is formatted once.
        times = [start + i * STEP for i in range(n)]
        stamps = [t.strftime(SQLITE_TIME) for t in times]
        pool = [round(rnd.lognormvariate(3.5, 0.6), 1) for _ in range(4099)]
        for device_id in range(1, devices + 1):
            outcomes = _outcomes(rnd, n)
            skew = rnd.randrange(len(pool))
            # One dict per row: the hook's input (checked_at a datetime) and, through
            # ``values``, the insert's (checked_at as SQLite stores it: "stamp").
            rows = [
                {
                    "device_id": device_id,
                    "status_up": o != "down",
                    "outcome": o,
                    "latency_ms": None
                    if o == "down"
                    else pool[(skew + i) % len(pool)] * (8 if o == "degraded" else 1),
                    "checked_at": times[i],
                    "stamp": stamps[i],
                    "run_key": f"probe:{device_id}:{i}",
                    "source": "schedule",
                    "in_maintenance": False,
                }
                for i, o in enumerate(outcomes)
            ]
            conn.exec_driver_sql(sql, list(map(values, rows)))
            t1 = time.perf_counter()
            rollups_total += add_to_rollups_sync(conn, rows)
            t_rollups += time.perf_counter() - t1
            changes = [
                {
                    "device_id": device_id,
                    "revision": k + 1,
                    "from_state": before,
                    "to_state": after,
                    "at": rows[i]["checked_at"],
                    "run_key": f"probe:{device_id}:{i}",
                }
                for k, (i, before, after) in enumerate(
                    (i, outcomes[i - 1] if i else "unknown", outcomes[i])
                    for i in range(n)
                    if i == 0 or outcomes[i] != outcomes[i - 1]
                )
            ]
            conn.execute(insert(CHANGES), changes)
            last = changes[-1]
            conn.execute(
                insert(HEALTH),
                {
                    "device_id": device_id,
                    "state": last["to_state"],
                    "since": last["at"],
                    "revision": last["revision"],
                    "health": {},
                    "updated_at": end,
                },
            )
            rows_total += len(rows)
            changes_total += len(changes)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {
        "devices": devices,
        "days": days,
        "results": rows_total,
        "rollup_rows": rollups_total,
        "state_changes": changes_total,
        "generate_s": round(seconds, 1),
        "rows_per_s": round(rows_total / seconds),
        "rollup_build_s": round(t_rollups, 1),
        "db_mb": round(path.stat().st_size / 1e6),
    }


async def time_queries(path: Path, devices: int, end: datetime, calls: int) -> dict[str, Any]:
    engine = make_engine(Settings(DATABASE_URL=f"sqlite+aiosqlite:///{path}"))  # type: ignore[call-arg]
    windows = parse_windows("24h,7d,30d")
    day = parse_windows("24h")[0]
    rnd = random.Random(7)
    try:
        await device_uptime(engine, 1, windows, end)  # warm the pool
        uptime_ms = []
        cpu0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            found = await device_uptime(engine, rnd.randint(1, devices), windows, end)
            uptime_ms.append((time.perf_counter() - t0) * 1000)
            assert found is not None and found[2].checks > 0
        # CPU per call (this process, the database thread included): what the box's
        # other load does not inflate, unlike the wall time.
        uptime_cpu_ms = (time.process_time() - cpu0) / calls * 1000
        status_ms = []
        for _ in range(max(10, calls // 10)):
            offset = rnd.randint(0, max(0, devices - 100))
            t0 = time.perf_counter()
            page = await device_statuses(engine, end, limit=100, offset=offset, day=day)
            status_ms.append((time.perf_counter() - t0) * 1000)
            assert page
        # The status page's uptime: 100 devices over 30 days in one call.
        month = parse_window("30d")
        page_ms = []
        for _ in range(max(10, calls // 10)):
            first = rnd.randint(1, max(1, devices - 99))
            ids = list(range(first, min(devices, first + 99) + 1))
            t0 = time.perf_counter()
            async with engine.connect() as conn:
                percents = await uptime_percents(conn, ids, month, end)
            page_ms.append((time.perf_counter() - t0) * 1000)
            assert len(percents) == len(ids) and any(v is not None for v in percents.values())
    finally:
        await engine.dispose()

    def dist(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(percentile(values, 50), 2),
            "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2),
        }

    return {
        "calls": calls,
        "uptime_ms": dist(uptime_ms),
        "uptime_cpu_ms_per_call": round(uptime_cpu_ms, 2),
        "status_100_ms": dist(status_ms),
        "page_uptime_100_ms": dist(page_ms),
    }


async def run_uptime(workdir: Path, devices: int, days: int, calls: int) -> dict[str, Any]:
    """Scenario (6): generate (blocking: nothing else runs meanwhile), then time."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    path = workdir / "uptime.db"
    await prepare_db(path, devices, "http://127.0.0.1:9/", 300, 5.0)
    made = generate(path, devices, days, end)
    timed = await time_queries(path, devices, end, calls)
    return made | timed
