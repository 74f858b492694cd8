"""The peer (issue 14): Prometheus blackbox_exporter, a Go prober that stores nothing,
probing the bench's own target with the same N, ``PEER_IN_FLIGHT`` requests at a time.

``python -m bench --only peer`` runs it alone.  It is found on PATH as
``prometheus-blackbox-exporter`` (Debian's package) or ``blackbox_exporter`` (upstream's
tarball); without it the bench says so and reports no ratio.  It runs as a child of the
bench with its own config (one ``http_2xx`` module) on a free port, never as a service.
An aiohttp client fires ``GET /probe?target=<target>&module=http_2xx`` and counts a probe
as done when the exporter answered ``probe_success 1``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from bench.procs import Proc, Sampler
from bench.stats import percentile
from core.natsserver import free_port

BINARIES = ("prometheus-blackbox-exporter", "blackbox_exporter")
PEER_IN_FLIGHT = 50
CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""
SUCCESS = b"\nprobe_success 1\n"


def find_peer() -> str | None:
    """The blackbox_exporter binary on PATH, or None."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def not_found() -> str:
    return (
        "peer: blackbox_exporter not found on PATH (looked for "
        + " and ".join(BINARIES)
        + "); `apt-get install prometheus-blackbox-exporter` adds it. No ratio to the peer."
    )


def start_peer(binary: str, workdir: Path) -> tuple[Proc, str]:
    """The exporter on a free port with our config; its base URL once it answers."""
    config = workdir / "blackbox.yml"
    config.write_text(CONFIG)
    port = free_port()
    proc = Proc(
        "peer",
        [
            binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        {},
        workdir / "peer.log",
    )
    return proc, f"http://127.0.0.1:{port}"


async def _wait_healthy(proc: Proc, base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{base}/-/healthy") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if proc.popen.poll() is not None:
                raise RuntimeError(f"blackbox_exporter exited: {proc.output()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"blackbox_exporter not healthy within {timeout:g}s")
            await asyncio.sleep(0.05)


async def _fire(base: str, target: str, n: int, in_flight: int) -> dict[str, Any]:
    """``n`` probes through the exporter, ``in_flight`` at a time."""
    # Built once: the client's own cost per probe is not what is measured.
    url = yarl.URL(f"{base}/probe").with_query({"target": target, "module": "http_2xx"})
    latencies: list[float] = []
    ok = 0
    remaining = n
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal ok, remaining
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                async with http.get(url) as resp:
                    body = await resp.read()
                if resp.status == 200 and SUCCESS in body:
                    ok += 1
                latencies.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        cpu0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(in_flight, n))))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu0
    return {
        "n": n,
        "ok": ok,
        "seconds": round(elapsed, 3),
        "probes_per_s": round(ok / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "client_cpu_us_per_probe": round(client_cpu / n * 1e6, 1),
    }


async def run_peer(
    binary: str,
    workdir: Path,
    target: str,
    sampler: Sampler,
    n: int,
    in_flight: int = PEER_IN_FLIGHT,
) -> dict[str, Any]:
    """One measured run of ``n`` probes (after 200 of warm-up) by a fresh exporter."""
    proc, base = start_peer(binary, workdir)
    try:
        await _wait_healthy(proc, base)
        sampler.watch("peer", proc.pid)
        await _fire(base, target, min(200, n), in_flight)  # warm-up: first calls, pools
        sampler.mark()
        result = await _fire(base, target, n, in_flight)
        cpu = sampler.report()["peer"]
        result["cpu_us_per_probe"] = round(cpu["cpu_s"] / n * 1e6)
        result["cpu_pct"] = cpu["cpu_pct"]
        result["box_cpu"] = sampler.box()
        return result
    finally:
        sampler.unwatch("peer")
        proc.stop()


async def peer_runs(
    workdir: Path, target: str, sampler: Sampler, n: int, repeat: int
) -> dict[str, Any]:
    """``repeat`` runs of the peer, the median (by probes/s) with every run's figure;
    ``{"missing": ...}`` when no exporter is installed."""
    binary = find_peer()
    if binary is None:
        return {"missing": not_found()}
    runs = [await run_peer(binary, workdir, target, sampler, n) for _ in range(repeat)]
    return median_peer(runs, binary)


def median_peer(runs: list[dict[str, Any]], binary: str) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda r: float(r["probes_per_s"]))
    out = dict(ranked[len(ranked) // 2])
    out["runs_probes_per_s"] = [r["probes_per_s"] for r in runs]
    out["binary"] = binary
    out["in_flight"] = PEER_IN_FLIGHT
    return out
