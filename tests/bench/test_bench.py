"""The benchmark's quick mode runs end to end and prints its JSON line (no timing checks:
speed is read from the figures, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.peer import find_peer
from tests.processes import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(450)
def test_quick_bench_prints_one_json_line_with_every_scenario(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json-out", str(tmp_path / "bench.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "bench.json").read_text())
    assert set(result) >= {
        "raw",
        "saturation",
        "scaleout",
        "steady",
        "footprint",
        "uptime",
        "peer",
        "outofbox",
        "storepath",
        "conditions",
        "sweep",
        "targets",
    }
    assert {"rps", "p99_ms"} <= set(result["raw"][result["http_engine"]])
    for run in result["scaleout"].values():
        assert {"probes_per_s", "stored", "events", "cpu_us_per_probe", "processes"} <= set(run)
        assert run["stored"] == run["events"] == run["devices"]
        assert sum(run["probes_by_process"].values()) == run["devices"]
    assert {"probes_per_s", "ratio_to_raw"} <= set(result["saturation"])
    steady = result["steady"]
    assert {"lateness_ms", "e2e_ms", "missed", "duplicates", "processes"} <= set(steady)
    assert steady["cpu_us_per_probe"] > 0  # the scheduler's CPU over what it stored
    assert {"p50", "p99", "max"} <= set(steady["lateness_ms"])
    for footprint in result["footprint"].values():
        assert {"startup_s", "rss_mb"} <= set(footprint)
    uptime = result["uptime"]
    assert uptime["results"] == uptime["devices"] * uptime["days"] * 288
    assert {"p50", "p99", "max"} <= set(uptime["uptime_ms"]) and uptime["rollup_rows"] > 0
    storepath = result["storepath"]
    assert set(storepath["configs"]) == {"none", "rollups", "health", "health+rollups"}
    for config in storepath["configs"].values():  # every result stored once, in every config
        assert config["stored"] == storepath["devices"] * storepath["rounds"]
        assert {"first_cpu_us_per_row", "cpu_us_per_row"} <= set(config)
    sweep = result["sweep"]["counts"]["1000"]  # every sweep changed nothing (or it raised)
    assert sweep["devices"] == 1000 and len(sweep["runs_cpu_ms"]) == result["sweep"]["repeat"]
    assert sweep["cpu_ms"] > 0
    ab = result["conditions"]
    for name in ("plain", "conditions"):
        assert ab[name]["stored"] == ab[name]["events"] == ab[name]["devices"] == ab["devices"]
    assert {"ratio", "runs_ratio"} <= set(ab)
    assert {"missed", "duplicates", "lateness_ms"} <= set(ab["steady"])
    assert ab["steady"]["device_fields"]["conditions"]
    assert all({"target", "value", "met"} <= set(t) for t in result["targets"])
    names = {t["target"] for t in result["targets"]}
    assert "saturation with conditions and thresholds / plain devices (%)" in names
    assert any(n.startswith("in-process worker, CPU per probe (us") for n in names)  # issue 14
    # The peer when installed (.ci/run installs it), else a plain sentence saying so.
    peer = result["peer"]
    if find_peer() is None:
        assert "not found on PATH" in peer["missing"]
    else:
        assert peer["ok"] == peer["n"] == result["scaleout"]["+0"]["devices"]
        assert "of the peer" in out.stdout
    # Out of the box: a fresh scheduler.py with no flags, and with --workers 0 beside it.
    oob = result["outofbox"]
    assert set(oob) == {"--workers 0", "no flags"}
    assert oob["--workers 0"]["worker_processes"] == 0
    for run in oob.values():
        assert run["exit_code"] == 0, run
        for post in (run["first"], run["second"]):
            assert post["stored"] == post["events"] == post["devices"]
            assert sum(post["probes_by_process"].values()) == post["devices"]
    if oob["no flags"]["worker_processes"]:  # more than one process probed
        assert len(oob["no flags"]["second"]["probes_by_process"]) > 1


@pytest.mark.timeout(450)
def test_the_durability_ab_runs_each_configuration_on_its_own_system(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    out = subprocess.run(
        [
            sys.executable, "-m", "bench", "--quick", "--only", "durability", "--n", "100",
            "--json-out", str(tmp_path / "bench.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "bench.json").read_text())["durability"]
    configs = result["configs"]
    assert set(configs) == {"A", "B", "C"}
    sync = {name: tuple(run["config"].values()) for name, run in configs.items()}
    assert sync == {"A": ("normal", "default"), "B": ("full", "always"), "C": ("full", "default")}
    for run in configs.values():  # every probe of every configuration stored and announced
        assert run["stored"] == run["events"] == run["devices"] == 100
        assert {"probes_per_s", "kick_s", "ratio_to_a", "runs_probes_per_s"} <= set(run)
    assert configs["A"]["ratio_to_a"] == 1.0
    assert "durability A/B" in out.stdout
