"""Out of the box (issue 14): ``python scheduler.py`` as a user starts it, against the peer.

Each run is a fresh install: a new folder with a fresh SQLite file holding N devices, free
ports, and ``python scheduler.py`` with no flags (or with the ``--workers K`` of an A/B
configuration), so it starts its own embedded nats-server, its in-process worker and the
worker processes of ``WORKERS`` (default ``auto``).  Once every consumer listens, one
``POST /jobs/probe`` for all N devices, timed until all N results are stored (conditions
and state evaluated by the writer's hooks) and N ``check.created`` events arrived on
``items.updates`` (a NATS subscription of the bench's, no WebSocket); then a second POST
on the same system.  The first POST is every device's first result (a health row and a
state change each), the second is the steady case.  CPU is that of the whole process tree
(scheduler.py, its nats-server, its worker processes).

The peer (:mod:`bench.peer`) is measured right before each round of configurations, and
each round's ratio is to that measurement: the box's speed drifts over minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

from bench import peer, profile
from bench.procs import Proc, Sampler, python
from bench.scenarios import IDLE_INTERVAL, probe_all
from bench.system import READY, prepare_db
from core.natsserver import free_port

LISTENING = "listening stream="
EVENTS_SUBJECT = "items.updates"  # the default: nothing of the subject is configured
# The target: out of the box, 1.5 times the peer's probes/s.
TARGET_PEER_RATIO = 1.5


class Events:
    """``check.created`` events on ``items.updates``, by run key prefix, with arrival."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        event = json.loads(msg.data)
        if event.get("type") == "check.created":
            self.arrivals.append((time.perf_counter(), event["payload"]))
            self._changed.set()

    def of(self, prefix: str) -> list[tuple[float, dict[str, Any]]]:
        return [a for a in self.arrivals if str(a[1].get("run_key", "")).startswith(prefix)]

    async def wait(self, prefix: str, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            seen = len(self.of(prefix))
            remaining = deadline - time.monotonic()
            if seen >= n or remaining <= 0:
                return seen
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))


def _stored(db: Path, prefix: str) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM check_results WHERE run_key LIKE ?", (prefix + "%",)
        ).fetchone()
        return int(row[0])


async def _post(base: str, events: Events, db: Path, sampler: Sampler, pid: int, n: int,
                timeout: float) -> dict[str, Any]:  # fmt: skip
    """One ``POST /jobs/probe`` for every device, until all N are stored and announced."""
    sampler.mark()
    t0 = time.perf_counter()
    posted = await probe_all(base, n)
    if isinstance(posted, dict):
        return posted
    prefix, kicked = posted
    seen = await events.wait(prefix, n, timeout)
    arrived = events.of(prefix)
    t_end = max((t for t, _ in arrived), default=time.perf_counter())
    stored = _stored(db, prefix)
    deadline = time.monotonic() + 10
    while stored < n and time.monotonic() < deadline:  # events first, rows a moment later
        await asyncio.sleep(0.05)
        stored = _stored(db, prefix)
        t_end = time.perf_counter()
    elapsed = t_end - t0
    cpu = sampler.report()["outofbox"]
    pids = Counter(str(p.get("worker", "")).rpartition(":")[2] for _, p in arrived)
    return {
        "devices": n,
        "probes_per_s": round(min(stored, seen) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "kick_s": round(kicked, 3),
        "stored": stored,
        "events": seen,
        # The whole tree: scheduler.py, its nats-server and its worker processes.
        "cpu_us_per_probe": round(cpu["cpu_s"] / n * 1e6),
        "cpu_pct": cpu["cpu_pct"],
        "peak_rss_mb": cpu["peak_rss_mb"],
        "probes_by_process": {
            ("scheduler" if p == str(pid) else f"pid {p}"): c for p, c in pids.most_common()
        },
        "box_cpu": sampler.box(),
    }


async def run_once(
    workdir: Path,
    target: str,
    sampler: Sampler,
    n: int,
    flags: list[str],
    env: dict[str, str],
    timeout: float,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """A fresh install, started with ``flags``; the first and the second POST."""
    home = workdir / f"outofbox-{time.monotonic_ns()}"
    home.mkdir()
    db = home / "monitoring.db"
    await prepare_db(db, n, target, IDLE_INTERVAL, 10.0)
    nats_url = f"nats://127.0.0.1:{free_port()}"
    port = free_port()
    # Only where it lives (free ports, its folder): every setting keeps its default.
    own = {
        "NATS_URL": nats_url,
        "WEB_PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "NATS_DATA_DIR": str(home / "data"),
        **env,
    }
    script = str(Path(__file__).resolve().parent.parent / "scheduler.py")
    proc = Proc("outofbox", python(script, *flags), own, home / "scheduler.log")
    out: dict[str, Any] = {"flags": " ".join(flags) or "(none)"}
    try:
        out["startup_s"] = round(proc.wait_for(READY, 120), 2)
        found = re.search(r"worker_processes=(\d+)", proc.output())
        out["worker_processes"] = workers = int(found.group(1)) if found else 0
        # Every consumer listening (the in-process worker's and each worker process's).
        deadline = time.monotonic() + 60
        while proc.output().count(LISTENING) < workers + 1:
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError(f"not every worker listened:\n{proc.output()[-3000:]}")
            await asyncio.sleep(0.05)
        out["ready_s"] = round(time.perf_counter() - proc.started, 2)
        sampler.watch("outofbox", proc.pid)
        events = Events()
        nc = await nats.connect(nats_url)
        try:
            await nc.subscribe(EVENTS_SUBJECT, cb=events.on_msg)
            await nc.flush()
            await nc.flush()  # nats-py: the SUB may still sit behind the first PING
            base = f"http://127.0.0.1:{port}"
            out["first"] = await _post(base, events, db, sampler, proc.pid, n, timeout)
            with profile.recording(
                proc.pid, profile_to or home / "none.txt", profile_to is not None, subprocesses=True
            ):
                out["second"] = await _post(base, events, db, sampler, proc.pid, n, timeout)
        finally:
            await nc.close()
    except RuntimeError as exc:
        out["error"] = str(exc)
    finally:
        sampler.unwatch("outofbox")
        t = time.perf_counter()
        proc.stop(timeout=30)
        out["stop_s"] = round(time.perf_counter() - t, 2)
        out["exit_code"] = proc.popen.returncode
    return out


def _rate(run: dict[str, Any]) -> float:
    return float(run.get("second", {}).get("probes_per_s") or 0.0)


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median run by the ``key`` POST's probes/s, with every run's figure."""
    rate = [float(r.get(key, {}).get("probes_per_s", 0.0)) for r in runs]
    order = sorted(range(len(runs)), key=lambda i: rate[i])
    median = dict(runs[order[len(order) // 2]])
    median["runs_probes_per_s"] = {
        k: [r.get(k, {}).get("probes_per_s", 0.0) for r in runs] for k in ("first", "second")
    }
    return median


async def outofbox_and_peer(
    workdir: Path,
    target: str,
    sampler: Sampler,
    n: int,
    configs: list[tuple[str, list[str]]],
    env: dict[str, str],
    repeat: int,
    timeout: float,
    run_peer: bool,
    run_outofbox: bool,
    profile_runs: bool,
) -> dict[str, Any]:
    """``repeat`` rounds of: the peer, then every configuration of scheduler.py."""
    binary = peer.find_peer() if run_peer else None
    peers: list[dict[str, Any]] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in configs}
    ratios: dict[str, list[float]] = {name: [] for name, _ in configs}
    for round_ in range(repeat):
        peer_rate = None
        if binary is not None:
            result = await peer.run_peer(binary, workdir, target, sampler, n)
            peers.append(result)
            peer_rate = result["probes_per_s"]
        if not run_outofbox:
            continue
        for i, (name, flags) in enumerate(configs):
            profile_to = None
            if profile_runs and round_ == 0:  # every configuration's first run
                profile_to = workdir / f"profile-outofbox-{i}.txt"
            r = await run_once(workdir, target, sampler, n, flags, env, timeout, profile_to)
            second = r.get("second", {}).get("probes_per_s")
            if peer_rate and second:
                r["ratio_to_peer"] = round(second / peer_rate, 2)
                ratios[name].append(r["ratio_to_peer"])
            runs[name].append(r)
    out: dict[str, Any] = {}
    if run_peer:
        out["peer"] = (
            {"missing": peer.not_found()} if binary is None else peer.median_peer(peers, binary)
        )
    if run_outofbox:
        table: dict[str, Any] = {}
        for name, _ in configs:
            median = _median(runs[name], "second")
            if ratios[name]:
                median["runs_ratio_to_peer"] = ratios[name]
                median["ratio_to_peer"] = sorted(ratios[name])[len(ratios[name]) // 2]
            table[name] = median
        # A/B in the same rounds: each configuration against the first (+0).
        base = configs[0][0] if configs else None
        for name, _ in configs[1:]:
            pairs = [
                rb / ra
                for a, b in zip(runs[str(base)], runs[name], strict=True)
                if (ra := _rate(a)) and (rb := _rate(b))
            ]
            if pairs:
                table[name]["runs_ratio_to_first_config"] = [round(p, 2) for p in pairs]
        out["outofbox"] = table
        if profile_runs:
            out["outofbox_profile"] = {
                name: profile.summarise_tree(workdir / f"profile-outofbox-{i}.txt")
                for i, (name, _) in enumerate(configs)
            }
    return out


def peer_table(p: dict[str, Any]) -> str:
    from bench.stats import table

    if "missing" in p:
        return str(p["missing"])
    rows = [
        [
            "blackbox_exporter",
            p["n"],
            p["in_flight"],
            p["probes_per_s"],
            " / ".join(f"{v:,.0f}" for v in sorted(p["runs_probes_per_s"])),
            p["p50_ms"],
            p["p99_ms"],
            p["cpu_us_per_probe"],
            p["client_cpu_us_per_probe"],
            f"{p['ok']}/{p['n']}",
            f"{p['box_cpu']['others_pct']:.0f}%",
        ]
    ]
    return f"(7) the peer: {p['binary']}, GET /probe?module=http_2xx (the median run)\n" + table(
        rows,
        ["peer", "N", "in flight", "probes/s", "runs", "p50 ms", "p99 ms", "CPU us/probe",
         "client CPU us/probe", "ok", "not ours"],
    )  # fmt: skip


def outofbox_table(t: dict[str, Any]) -> str:
    from bench.stats import table

    rows = []
    for name, r in t.items():
        if "error" in r or "second" not in r:
            rows.append([name, r.get("error", "?")] + [""] * 10)
            continue
        first, second = r["first"], r["second"]
        ab = r.get("runs_ratio_to_first_config")
        rows.append(
            [
                name,
                r["worker_processes"],
                second["probes_per_s"],
                " / ".join(f"{v:,.0f}" for v in sorted(r["runs_probes_per_s"]["second"])),
                first["probes_per_s"],
                " / ".join(f"{v:.2f}x" for v in sorted(r.get("runs_ratio_to_peer", []))),
                " / ".join(f"{v:.2f}x" for v in sorted(ab)) if ab else "",
                second["cpu_us_per_probe"],
                f"{second['stored']}/{second['events']}",
                ", ".join(str(v) for v in second["probes_by_process"].values()),
                second["peak_rss_mb"],
                f"{second['box_cpu']['others_pct']:.0f}%",
            ]
        )
    header = [
        "scheduler.py", "worker procs", "probes/s (2nd POST)", "runs", "1st POST",
        "of the peer (each round)", "vs first row (each round)", "CPU us/probe",
        "stored/events", "probes by process", "peak RSS MB (tree)", "not ours",
    ]  # fmt: skip
    return (
        "(8) out of the box: python scheduler.py on a fresh install, one POST /jobs/probe for "
        "N devices until all stored and announced on items.updates (median run by the second "
        "POST; ratios per round)\n" + table(rows, header)
    )


def peer_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue-14 target: no flags, at least 1.5 times the peer's probes/s."""
    table = result.get("outofbox") or {}
    row = table.get("no flags")
    if not row or "ratio_to_peer" not in row:
        return []
    value = float(row["ratio_to_peer"])
    return [
        {
            "target": "out of the box (no flags) / blackbox_exporter, probes/s (x)",
            "value": value,
            "want": TARGET_PEER_RATIO,
            "met": value >= TARGET_PEER_RATIO,
            "by": round((value - TARGET_PEER_RATIO) / TARGET_PEER_RATIO * 100, 1),
        }
    ]
