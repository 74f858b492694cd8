"""Scenario (9), the store path: what the check writer's hooks (device health, rollups)
cost per stored result, on the writer alone.

A fresh SQLite file per configuration with D devices; R rounds of one result per device
(a device's n-th result in slot n, as the probe task builds them: outcome, the verdicts of
three conditions), each round written by D concurrent ``BatchWriter.write`` calls (full
batches of ``RESULT_BATCH_SIZE``), the configurations alternated round by round so the
box's drift falls on all of them alike.  CPU is the process's (``time.process_time``:
the event loop and aiosqlite's thread), per stored result.  The first round is every
device's first result (a health row inserted, a state change stored); the window of 16
recent results the health row keeps is full from round 17 on, which is what a running
system writes.  No NATS, no HTTP: the database write and what the hooks add to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stats import table
from core.settings import Settings
from jobs.probe.health import HealthTracker
from storage.db import init_db, make_engine
from storage.models import CheckResult
from storage.rollups import rollups_hook
from storage.writer import AfterInsert, BatchWriter

CHECKS = CheckResult.__table__  # type: ignore[attr-defined]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
VERDICTS = [
    {"condition": "[STATUS] == 200", "success": True, "actual": "200"},
    {"condition": "[RESPONSE_TIME] < 500", "success": True, "actual": "1"},
    {"condition": "[BODY] == pat(*ok*)", "success": True, "actual": "ok"},
]
DEGRADED = [{"condition": "[RESPONSE_TIME] > 400", "success": False, "actual": "1"}]
CONFIGS = ("none", "rollups", "health", "health+rollups")


def _row(device_id: int, n: int) -> dict[str, Any]:
    """A device's n-th result (slot ``T0 + n`` minutes), one in 50 failing."""
    slot = T0 + n * STEP
    up = (device_id + n) % 50 != 0
    return {
        "device_id": device_id,
        "status_up": up,
        "latency_ms": 1.0 + device_id % 7,
        "checked_at": slot + timedelta(milliseconds=3),
        "run_key": f"probe:{device_id}:{n}",
        "slot_at": slot,
        "status_code": 200 if up else 503,
        "error_kind": None if up else "status",
        "error": None if up else "status 503",
        "source": "schedule",
        "outcome": "up" if up else "down",
        "verdicts": VERDICTS
        if up
        else [{**VERDICTS[0], "success": False, "actual": "503"}, *VERDICTS[1:]],
        "degraded_verdicts": DEGRADED if up else None,
        "certificate_expires_at": None,
        "certificate_subject": None,
        "in_maintenance": False,
    }


def _hooks(config: str) -> list[AfterInsert]:
    hooks: list[AfterInsert] = []
    if "health" in config:
        hooks.append(HealthTracker().after_insert)
    if "rollups" in config:
        hooks.append(rollups_hook)
    return hooks


async def _database(path: Path, devices: int) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
    try:
        await init_db(engine)
    finally:
        await engine.dispose()
    now = T0.strftime("%Y-%m-%d %H:%M:%S.000000")
    rows = ((f"d{i}", "http://127.0.0.1:1/", 1, 60, 5.0, now, now) for i in range(devices))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO devices (name, address, is_active, interval_seconds, timeout_seconds,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return url


async def _round(writer: BatchWriter, devices: int, n: int) -> tuple[float, float, int]:
    """One result per device in slot ``n``: (CPU s, wall s, rows stored)."""
    rows = [_row(d, n) for d in range(1, devices + 1)]
    cpu, wall = time.process_time(), time.perf_counter()
    ids = await asyncio.gather(*(writer.write(row) for row in rows))
    return time.process_time() - cpu, time.perf_counter() - wall, sum(i is not None for i in ids)


async def run_storepath(
    workdir: Path,
    devices: int,
    rounds: int,
    configs: Sequence[str] = CONFIGS,
    batch_size: int = 200,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every configuration's CPU and wall time per stored result, round by round."""
    writers: dict[str, BatchWriter] = {}
    engines = []
    for config in configs:
        url = await _database(workdir / f"storepath-{config.replace('+', '-')}.db", devices)
        engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
        engines.append(engine)
        hooks = _hooks(config)
        writers[config] = BatchWriter(
            engine, CHECKS, "run_key", batch_size=batch_size, flush_ms=5, after_insert=hooks
        )
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    wall: dict[str, list[float]] = {c: [] for c in configs}
    stored: dict[str, int] = dict.fromkeys(configs, 0)
    try:
        for n in range(rounds):
            for config in configs if n % 2 == 0 else reversed(configs):
                c, w, k = await _round(writers[config], devices, n)
                cpu[config].append(c / devices * 1e6)
                wall[config].append(devices / w)
                stored[config] += k
            if say is not None and n in (0, rounds - 1):
                say(f"storepath round {n + 1}/{rounds} done")
    finally:
        for writer in writers.values():
            await writer.close()
        for engine in engines:
            await engine.dispose()
    full = min(16, rounds - 1)  # rounds whose health window is full (or the last ones)
    out: dict[str, Any] = {
        "devices": devices,
        "rounds": rounds,
        "batch_size": batch_size,
        "configs": {},
    }
    for config in configs:
        steady = cpu[config][full:] or cpu[config][-1:]
        out["configs"][config] = {
            "stored": stored[config],
            "first_cpu_us_per_row": round(cpu[config][0], 1),
            "cpu_us_per_row": round(statistics.median(steady), 1),
            "runs_cpu_us_per_row": [round(v, 1) for v in steady],
            "rows_per_s": round(statistics.median(wall[config][full:] or wall[config][-1:])),
        }
    base = out["configs"].get("none", {}).get("cpu_us_per_row")
    if base is not None:
        for config in configs:
            r = out["configs"][config]
            r["hooks_cpu_us_per_row"] = round(r["cpu_us_per_row"] - base, 1)
    return out


def table_of(r: dict[str, Any]) -> str:
    rows = [
        [
            config,
            c["first_cpu_us_per_row"],
            c["cpu_us_per_row"],
            " / ".join(f"{v:.0f}" for v in c["runs_cpu_us_per_row"]),
            c.get("hooks_cpu_us_per_row", ""),
            c["rows_per_s"],
            c["stored"],
        ]
        for config, c in r["configs"].items()
    ]
    return (
        f"(9) store path: the check writer alone, {r['devices']:,} devices x {r['rounds']} "
        f"rounds, batches of {r['batch_size']}, SQLite (CPU us per stored result; the hooks' "
        "share is the difference to 'none')\n"
        + table(
            rows,
            [
                "hooks",
                "first result",
                "window full",
                "runs",
                "hooks' share",
                "rows/s",
                "stored",
            ],
        )
    )


async def _main() -> None:  # pragma: no cover - by hand: python -m bench.storepath
    import argparse
    import json
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(await run_storepath(Path(tmp), args.devices, args.rounds, say=print)))


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
