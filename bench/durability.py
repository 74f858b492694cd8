"""Scenario ``durability`` (issue 15 item 8): what the durable settings cost, A/B in one run.

A is ``SQLITE_SYNCHRONOUS=normal`` with JetStream's own sync interval (``default``: 2
minutes), B is ``full`` with ``NATS_SYNC_INTERVAL=always`` (an fsync per queued message),
C is the shipped defaults (``full`` / ``default``).  Each run is the saturation of
:func:`bench.scenarios.scaleout` (in-process worker, a warm-up POST then a measured one)
on a system of its own: a fresh SQLite file and a nats-server started with that run's
sync interval.  The configurations are alternated round by round (A B C, then C B A, ...)
so the box's drift spreads over all of them; the median run of each is reported with
its ratio to A.  What each level survives: docs/reliability.md, "Durability".

Opt-in (``--only durability``): it starts three systems a round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import Sampler
from bench.stats import fmt, table
from core.natsserver import free_port, start_nats_server

SERVER = "nats-server (this configuration's)"
CONFIGS: dict[str, dict[str, str]] = {
    "A": {"SQLITE_SYNCHRONOUS": "normal", "NATS_SYNC_INTERVAL": "default"},
    "B": {"SQLITE_SYNCHRONOUS": "full", "NATS_SYNC_INTERVAL": "always"},
    "C": {"SQLITE_SYNCHRONOUS": "full", "NATS_SYNC_INTERVAL": "default"},
}


def round_order(round_no: int) -> list[str]:
    """A B C on even rounds, C B A on odd ones.

    >>> [round_order(i) for i in range(2)]
    [['A', 'B', 'C'], ['C', 'B', 'A']]
    """
    names = list(CONFIGS)
    return names if round_no % 2 == 0 else names[::-1]


async def run_durability(
    workdir: Path,
    target: str,
    sampler: Sampler,
    n: int,
    env: dict[str, str],
    timeout: float,
    rounds: int,
    worker_args: list[str] | None = None,
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for r in range(rounds):
        for name in round_order(r):
            config = CONFIGS[name]
            folder = workdir / f"durability-{name}-{r}"
            folder.mkdir(parents=True)
            server = start_nats_server(
                "127.0.0.1",
                free_port(),
                folder / "nats",
                log_file=folder / "nats.log",
                sync_interval=config["NATS_SYNC_INTERVAL"],
            )
            # Its own CPU line in the runs' "processes" (the bench's nats-server idles).
            sampler.watch(SERVER, server.pid)
            try:
                result = await scenarios.scaleout(
                    folder,
                    server.url,
                    target,
                    sampler,
                    n,
                    [0],
                    env | config,
                    timeout,
                    worker_args=worker_args,
                )
            finally:
                sampler.unwatch(SERVER)
                server.stop()
            runs[name].append(result.get("+0", {}))
    configs = {name: scenarios.median_run(results) for name, results in runs.items()}
    base = configs["A"].get("probes_per_s") or 0.0
    for name, run in configs.items():
        run["config"] = CONFIGS[name]
        rate = run.get("probes_per_s") or 0.0
        run["ratio_to_a"] = round(rate / base, 3) if base else None
    return {"devices": n, "rounds": rounds, "configs": configs}


def durability_table(result: dict[str, Any]) -> str:
    rows = []
    for name, run in result["configs"].items():
        config = run["config"]
        ratio = run.get("ratio_to_a")
        rows.append(
            [
                name,
                f"{config['SQLITE_SYNCHRONOUS']} / {config['NATS_SYNC_INTERVAL']}",
                run.get("probes_per_s", "-"),
                " ".join(fmt(x) for x in run.get("runs_probes_per_s", [])),
                "-" if ratio is None else f"{ratio:.2f}",
                run.get("cpu_us_per_probe", "-"),
                run.get("kick_s", "-"),
                (run.get("post_to_start_ms") or {}).get("p50", "-"),
                (run.get("stored_to_ws_ms") or {}).get("p50", "-"),
            ]
        )
    header = [
        "config",
        "SQLite / JetStream sync",
        "probes/s",
        "runs",
        "to A",
        "CPU us/probe",
        "kick s",
        "POST->start p50 ms",
        "stored->WS p50 ms",
    ]
    return (
        f"durability A/B ({result['devices']} devices, {result['rounds']} rounds alternated, "
        "median run of each)\n" + table(rows, header)
    )
