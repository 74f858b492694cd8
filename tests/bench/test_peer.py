"""The bench's peer (bench/peer.py): found on PATH or said plainly missing; a real
blackbox_exporter probing the bench's own target, every probe answered ``probe_success 1``.
Skipped with a reason when the exporter is not installed, failed under CI=true (.ci/run
installs it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.peer import BINARIES, find_peer, median_peer, not_found, run_peer
from bench.procs import Sampler, stop_all
from bench.run import start_target


def test_no_exporter_on_path_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_peer() is None
    message = not_found()
    assert all(name in message for name in BINARIES)
    assert "apt-get install prometheus-blackbox-exporter" in message


def test_either_name_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    upstream = tmp_path / "blackbox_exporter"  # upstream's tarball name
    upstream.write_text("#!/bin/sh\n")
    upstream.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_peer() == str(upstream)


@pytest.mark.parametrize(
    ("rates", "median"), [([3.0], 3.0), ([5.0, 1.0, 3.0], 3.0), ([2.0, 4.0], 4.0)]
)
def test_the_median_run_keeps_every_runs_figure(rates: list[float], median: float) -> None:
    out = median_peer([{"probes_per_s": r} for r in rates], "/bin/x")
    assert out["probes_per_s"] == median
    assert out["runs_probes_per_s"] == rates


@pytest.fixture
def exporter() -> str:
    binary = find_peer()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"required under CI=true: {not_found()}")
        pytest.skip(not_found())
    return binary


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="peer-test-") as d:
        yield Path(d)
    stop_all()


async def test_the_exporter_probes_the_bench_target(exporter: str, workdir: Path) -> None:
    _, url = start_target(workdir, 1)
    sampler = Sampler().start()
    try:
        result = await run_peer(exporter, workdir, url, sampler, 300, in_flight=20)
    finally:
        sampler.close()
        stop_all()
    assert result["ok"] == result["n"] == 300
    assert result["probes_per_s"] > 0 and result["cpu_us_per_probe"] > 0
    assert "peer" not in sampler.report()  # stopped and unwatched
