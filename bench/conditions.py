"""Scenario (10), conditions A/B (issue 11, "Performance must not fall"): saturation with
conditions and thresholds on every device against plain devices, in one running system,
and the steady schedule with conditions on.

One database holds N plain devices (no conditions: the kind's default ``[STATUS] < 500``,
default thresholds) and N with :data:`DEVICE_FIELDS` (three conditions reading the
status, the response time and the body, a ``degraded_when``, both thresholds and a retry
interval).  The two groups are probed alternately (plain, conditions, conditions, plain,
...) by the same ``python scheduler.py``, each run by ``POST /jobs/probe`` naming its
group (in chunks of the endpoint's 1,000 ids, posted at once) until all N results are
stored and N ``check.created`` events reached the WebSocket client.  Device health and
rollups are written for both groups (the writer's hooks run for every stored result);
what differs is what the conditions add: reading and judging the body, the verdicts
stored, thresholds.  The ratio of the medians is the figure: target at least 85 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import scenarios
from bench.procs import Sampler
from bench.stats import table
from bench.system import Feed, System, prepare_db

# What every "conditions" device has (the bench target answers 200 "ok" at once).
DEVICE_FIELDS: dict[str, Any] = {
    "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 5000", "[BODY] == pat(*ok*)"],
    "degraded_when": ["[RESPONSE_TIME] > 3000"],
    "failure_threshold": 2,
    "success_threshold": 2,
    "retry_interval_seconds": 60,
}
TARGET_RATIO = 0.85
CHUNK = 1000  # POST /jobs/probe takes at most 1,000 device ids


def set_device_fields(path: Path, fields: dict[str, Any], first_id: int, last_id: int) -> None:
    """Give the devices ``first_id..last_id`` of a bench database ``fields`` (JSON lists
    encoded as the JSON columns store them)."""
    names = sorted(fields)
    values = [json.dumps(fields[k]) if isinstance(fields[k], list) else fields[k] for k in names]
    sets = ", ".join(f"{k} = ?" for k in names)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            f"UPDATE devices SET {sets} WHERE id BETWEEN ? AND ?", (*values, first_id, last_id)
        )


async def saturate_group(
    system: System, feed: Feed, ids: list[int], timeout: float
) -> dict[str, Any]:
    """Probe the devices ``ids`` at once (POSTs of 1,000 ids, concurrently) until every
    result is stored and announced: probes/s and fleetprobe's CPU per probe."""
    system.sampler.mark()
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as http:

        async def post(chunk: list[int]) -> tuple[int, list[dict[str, Any]]]:
            body = {"device_ids": chunk}
            async with http.post(f"{system.base}/jobs/probe", json=body) as resp:
                return resp.status, (await resp.json()).get("jobs") or []

        answers = await asyncio.gather(
            *(post(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK))
        )
    kicked = time.perf_counter() - t0
    if any(status != 202 for status, _ in answers) or sum(len(j) for _, j in answers) != len(ids):
        return {"error": f"POST /jobs/probe -> {[s for s, _ in answers]}"}
    prefixes = {jobs[0]["run_key"].rsplit(":", 1)[0] + ":" for _, jobs in answers}
    seen = 0
    for prefix in prefixes:  # each POST's run keys share a prefix
        want = sum(len(j) for _, j in answers if j[0]["run_key"].startswith(prefix))
        seen += await feed.wait_count(prefix, want, timeout)
    t_end = time.perf_counter()
    events = [
        e
        for e in feed.events
        if str(e.payload.get("run_key", "")).rsplit(":", 1)[0] + ":" in prefixes
    ]
    if events:
        t_end = max(e.received_perf for e in events)
    stored = sum(system.stored("run_key LIKE ?", (p + "%",)) for p in prefixes)
    elapsed = t_end - t0
    procs = system.sampler.report()
    ours = [v["cpu_s"] for k, v in procs.items() if k == "scheduler" or k.startswith("worker")]
    n = len(ids)
    return {
        "devices": n,
        "probes_per_s": round(min(stored, seen) / elapsed, 1),
        "cpu_us_per_probe": round(sum(ours) / n * 1e6),
        "seconds": round(elapsed, 3),
        "kick_s": round(kicked, 3),
        "stored": stored,
        "events": seen,
        "up": sum(e.payload.get("outcome") == "up" for e in events),
        "processes": procs,
        "box_cpu": system.sampler.box(),
    }


async def conditions_ab(
    workdir: Path,
    nats_url: str,
    target: str,
    sampler: Sampler,
    n: int,
    env: dict[str, str],
    timeout: float,
    repeat: int,
) -> dict[str, Any]:
    """The A/B: ``repeat`` runs of each group, alternated; the median of each, the ratio."""
    path = workdir / "conditions.db"
    url = await prepare_db(path, 2 * n, target, scenarios.IDLE_INTERVAL, 10.0)
    set_device_fields(path, DEVICE_FIELDS, n + 1, 2 * n)
    groups = {"plain": list(range(1, n + 1)), "conditions": list(range(n + 1, 2 * n + 1))}
    system = System(workdir, nats_url, url, sampler, extra_env=env)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "conditions": []}
    try:
        system.start()
        feed = await Feed(f"ws://127.0.0.1:{system.port}/ws/items?types=check.created").start()
        try:
            # Warm-up: every device's state settled (success_threshold passing results:
            # the measured runs change no state; a change costs more than a result).
            for _ in range(DEVICE_FIELDS["success_threshold"]):
                for ids in groups.values():
                    await saturate_group(system, feed, ids, timeout)
            for i in range(repeat):
                order = ("plain", "conditions") if i % 2 == 0 else ("conditions", "plain")
                for name in order:
                    runs[name].append(await saturate_group(system, feed, groups[name], timeout))
        finally:
            await feed.close()
    finally:
        system.stop()
    out: dict[str, Any] = {"devices": n, "device_fields": DEVICE_FIELDS}
    for name, results in runs.items():
        out[name] = scenarios.median_run(results)
    plain, cond = out["plain"].get("probes_per_s"), out["conditions"].get("probes_per_s")
    if plain and cond:
        out["ratio"] = round(cond / plain, 3)
        pairs = zip(runs["plain"], runs["conditions"], strict=True)
        out["runs_ratio"] = [
            round(c["probes_per_s"] / p["probes_per_s"], 3)
            for p, c in pairs
            if p.get("probes_per_s") and c.get("probes_per_s")
        ]
    return out


async def steady_with_conditions(
    workdir: Path,
    nats_url: str,
    target: str,
    sampler: Sampler,
    devices: int,
    interval: int,
    seconds: float,
    env: dict[str, str],
) -> dict[str, Any]:
    """Scenario (3) with :data:`DEVICE_FIELDS` on every device."""

    def fields(path: Path) -> None:
        set_device_fields(path, DEVICE_FIELDS, 1, devices)

    result = await scenarios.steady(
        workdir, nats_url, target, sampler, devices, interval, seconds, env, prepared=fields
    )
    result["device_fields"] = DEVICE_FIELDS
    return result


async def run_scenario(
    args: Any, workdir: Path, nats_url: str, target: str, sampler: Sampler
) -> dict[str, Any]:
    """What ``--only conditions`` runs: the saturation A/B, then the steady schedule with
    conditions on (the sizes of ``--n``, ``--repeat`` and the ``--steady-*`` flags)."""
    out = await conditions_ab(
        workdir,
        nats_url,
        target,
        sampler,
        args.n,
        args.env,
        timeout=120 if args.quick else 300,
        repeat=args.repeat,
    )
    out["steady"] = await steady_with_conditions(
        workdir,
        nats_url,
        target,
        sampler,
        args.steady_devices,
        args.steady_interval,
        args.steady_seconds,
        args.env,
    )
    return out


def table_of(r: dict[str, Any]) -> str:
    rows = []
    for name in ("plain", "conditions"):
        run = r[name]
        if "error" in run:
            rows.append([name, run["error"], "", "", "", "", ""])
            continue
        spread = sorted(run.get("runs_probes_per_s", [run["probes_per_s"]]))
        p = run["processes"]
        cpu = ", ".join(f"{k} {v['cpu_pct']:.0f}%" for k, v in p.items())
        cpu += f"; not ours {run['box_cpu']['others_pct']:.0f}%"
        rows.append(
            [
                name,
                run["devices"],
                run["probes_per_s"],
                " / ".join(f"{v:,.0f}" for v in spread),
                run["cpu_us_per_probe"],
                f"{run['stored']}/{run['events']}",
                cpu,
            ]
        )
    ratio = r.get("ratio")
    each = " / ".join(f"{v:.0%}" for v in r.get("runs_ratio", []))
    s = r["steady"]
    steady = [
        [
            f"{s['devices']} every {s['interval_s']}s for {s['seconds']:g}s, conditions on",
            s["lateness_ms"]["p50"],
            s["lateness_ms"]["p99"],
            s["e2e_ms"]["p99"],
            f"{s['stored']}/{s['expected']}",
            s["missed"],
            s["duplicates"],
        ]
    ]
    return (
        "(10) conditions A/B: saturation of N devices with conditions and thresholds against "
        f"N plain ones, alternated in one system (ratio of the medians: "
        f"{'-' if ratio is None else f'{ratio:.0%}'}; pairs: {each or '-'})\n"
        + table(
            rows,
            ["devices", "N", "probes/s", "runs", "CPU us/probe", "stored/events", "CPU"],
        )
        + "\n"
        + table(
            steady,
            ["steady", "late p50", "late p99", "e2e p99", "stored/expected", "missed", "dups"],
        )
    )


def targets_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    r = result.get("conditions")
    if not r:
        return []
    out: list[dict[str, Any]] = []
    if r.get("ratio") is not None:
        value = round(r["ratio"] * 100, 1)
        want = TARGET_RATIO * 100
        out.append(
            {
                "target": "saturation with conditions and thresholds / plain devices (%)",
                "value": value,
                "want": want,
                "met": value >= want,
                "by": round((value - want) / want * 100, 1),
            }
        )
    s = r.get("steady")
    if s:
        for key, label in (("missed", "missed"), ("duplicates", "duplicates")):
            out.append(
                {
                    "target": f"steady with conditions {label}",
                    "value": s[key],
                    "want": 0,
                    "met": s[key] == 0,
                }
            )
    return out
