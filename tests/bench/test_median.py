"""The bench reports the median of repeated saturation runs (pure)."""

from __future__ import annotations

from typing import Any

from bench.scenarios import median_raw, median_run


def test_the_median_run_is_reported_with_every_runs_figure() -> None:
    runs: list[dict[str, Any]] = [
        {"probes_per_s": 900.0, "n": 1},
        {"error": "timeout"},
        {"probes_per_s": 1500.0},
    ]
    median = median_run(runs)
    assert median["n"] == 1 and median["runs_probes_per_s"] == [900.0, 0.0, 1500.0]
    assert median_run([{"probes_per_s": 5.0}])["runs_probes_per_s"] == [5.0]


def test_the_median_raw_ceiling_is_reported_with_every_runs_figure() -> None:
    raw = median_raw([{"rps": 3000.0}, {"rps": 4000.0, "p99_ms": 9}, {"rps": 3500.0}])
    assert raw["rps"] == 3500.0 and raw["runs_rps"] == [3000.0, 4000.0, 3500.0]


def test_the_ratio_is_the_median_of_each_runs_own_ratio() -> None:
    runs = [
        {"probes_per_s": 1000.0, "ratio_to_raw": 0.5},
        {"probes_per_s": 1200.0, "ratio_to_raw": 0.3},  # a faster run beside a faster ceiling
        {"probes_per_s": 1100.0, "ratio_to_raw": 0.4},
    ]
    median = median_run(runs)
    assert median["probes_per_s"] == 1100.0 and median["ratio_to_raw"] == 0.4
    assert median["runs_ratio_to_raw"] == [0.5, 0.3, 0.4]
