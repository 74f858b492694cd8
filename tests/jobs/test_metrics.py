"""The work counters and their snapshots (pure: a registry of the test's own, no NATS)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

from jobs import metrics
from jobs.metrics import (
    PROCESS_ID,
    WORK,
    SampleKey,
    SnapshotError,
    WorkAggregator,
    count_notification,
    count_probe,
    count_recorder_command,
    decode_snapshot,
    encode_snapshot,
    merged_families,
    samples_of,
)


def registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    reg = CollectorRegistry()
    counter = Counter("t_things_total", "things", ["kind"], registry=reg)
    histogram = Histogram("t_seconds", "seconds", buckets=(1.0, 5.0), registry=reg)
    return reg, counter, histogram


def value(families: Sequence[Metric], sample: str, **labels: str) -> float:
    found = [
        s.value for f in families for s in f.samples if s.name == sample and s.labels == labels
    ]
    assert len(found) == 1, (sample, labels, found)
    return float(found[0])


def test_a_snapshot_round_trips_its_samples_without_created_times() -> None:
    reg, counter, histogram = registry()
    counter.labels("a").inc(3)
    histogram.observe(2.0)
    samples = samples_of(reg)
    assert not any(name.endswith("_created") for name, _ in samples)
    assert samples[("t_things_total", (("kind", "a"),))] == 3.0
    assert samples[("t_seconds_bucket", (("le", "5.0"),))] == 1.0
    snapshot = decode_snapshot(encode_snapshot("worker-1", samples))
    assert (snapshot.worker, snapshot.process) == ("worker-1", PROCESS_ID)
    assert snapshot.samples == samples


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"worker": "", "process": "p", "samples": []}', "worker and process"),
        (b'{"worker": "w", "process": 3, "samples": []}', "worker and process"),
        (b'{"worker": "w", "process": "p", "samples": {}}', "samples must be a list"),
        (b'{"worker": "w", "process": "p", "samples": [["a", {}]]}', "samples[0]"),
        (b'{"worker": "w", "process": "p", "samples": [["a", {"k": 1}, 1]]}', "samples[0]"),
        (b'{"worker": "w", "process": "p", "samples": [["a", {}, "1"]]}', "samples[0]"),
        (b'{"worker": "w", "process": "p", "samples": [["a", {}, true]]}', "samples[0]"),
        (b'{"worker":"w","process":"p","samples":[["a",{},1],[2,{},1]]}', "samples[1]"),
        (
            json.dumps({"worker": "w", "process": "p", "samples": [["a", {}, 1]] * 2001}).encode(),
            "2001 samples, more than 2000",
        ),
    ],
)
def test_a_bad_snapshot_is_refused_saying_what_is_wrong(data: bytes, error: str) -> None:
    with pytest.raises(SnapshotError, match=error.replace("[", r"\[").replace("]", r"\]")):
        decode_snapshot(data)


def test_other_processes_samples_are_added_to_the_registrys_own() -> None:
    reg, counter, histogram = registry()
    counter.labels("a").inc(1)
    histogram.observe(0.5)
    worker_a: dict[SampleKey, float] = {
        ("t_things_total", (("kind", "a"),)): 10.0,
        ("t_things_total", (("kind", "b"),)): 4.0,  # a label value never seen here
        ("t_seconds_bucket", (("le", "1.0"),)): 2.0,
        ("t_seconds_count", ()): 3.0,
        ("t_unknown_total", ()): 99.0,  # a family this version does not have
    }
    worker_b: dict[SampleKey, float] = {("t_things_total", (("kind", "a"),)): 5.0}
    families = merged_families(reg, [worker_a, worker_b])
    assert value(families, "t_things_total", kind="a") == 16.0
    assert value(families, "t_things_total", kind="b") == 4.0
    assert value(families, "t_seconds_bucket", le="1.0") == 3.0
    assert value(families, "t_seconds_bucket", le="+Inf") == 1.0
    assert value(families, "t_seconds_count") == 4.0
    names = {s.name for f in families for s in f.samples}
    assert "t_unknown_total" not in names
    assert not any(n.endswith("_created") for n in names)


def test_the_aggregator_keeps_each_workers_latest_snapshot_and_skips_its_own() -> None:
    reg, counter, _ = registry()
    counter.labels("a").inc(2)
    now = [100.0]
    agg = WorkAggregator(reg, interval=10, clock=lambda: now[0])

    def snap(worker: str, n: float, process: str = "other") -> bytes:
        body = {
            "worker": worker,
            "process": process,
            "samples": [["t_things_total", {"kind": "a"}, n]],
        }
        return json.dumps(body).encode()

    agg.receive(snap("w1", 5))
    agg.receive(snap("w1", 7))  # cumulative: replaces, not adds
    agg.receive(snap("w2", 1))
    agg.receive(snap("me", 1000, process=PROCESS_ID))  # this process: counted locally
    agg.receive(b"garbage")
    assert agg.rejected == 1
    families = list(agg.collect())
    assert value(families, "t_things_total", kind="a") == 2 + 7 + 1
    assert value(families, "fleetprobe_metrics_workers") == 2

    now[0] += 31  # three intervals without a word: no longer live, still counted
    families = list(agg.collect())
    assert value(families, "t_things_total", kind="a") == 10
    assert value(families, "fleetprobe_metrics_workers") == 0


def test_workers_beyond_the_cap_are_folded_into_the_totals_not_dropped() -> None:
    reg, _, _ = registry()
    agg = WorkAggregator(reg, interval=10, max_workers=2)
    for i in range(5):
        body = {
            "worker": f"w{i}",
            "process": "p",
            "samples": [["t_things_total", {"kind": "a"}, 1]],
        }
        agg.receive(json.dumps(body).encode())
    assert value(list(agg.collect()), "t_things_total", kind="a") == 5


@pytest.mark.parametrize(
    ("call", "sample", "labels"),
    [
        (lambda: count_probe("up", 0.2), "fleetprobe_probes_total", {"outcome": "up"}),
        (lambda: count_probe("degraded", 0.2), "fleetprobe_probes_total", {"outcome": "degraded"}),
        (lambda: count_probe("odd", 0.2), "fleetprobe_probes_total", {"outcome": "odd"}),
        (lambda: count_probe("down", 0.2), "fleetprobe_probe_duration_seconds_count", {}),
        (lambda: count_probe("down", 0.2, 1.5), "fleetprobe_slot_lateness_seconds_count", {}),
        (
            lambda: count_recorder_command("timeout"),
            "fleetprobe_recorder_commands_total",
            {"outcome": "timeout"},
        ),
        (lambda: count_notification("sent"), "fleetprobe_notifications_total", {"status": "sent"}),
    ],
)
def test_each_counting_function_moves_its_sample_by_one(
    call: object, sample: str, labels: dict[str, str]
) -> None:
    key = (sample, tuple(sorted(labels.items())))
    before = samples_of(WORK).get(key, 0.0)
    call()  # type: ignore[operator]
    assert samples_of(WORK)[key] == before + 1


def test_a_probe_without_a_slot_observes_no_lateness() -> None:
    key = ("fleetprobe_slot_lateness_seconds_count", ())
    before = samples_of(WORK)[key]
    count_probe("up", 0.1, None)
    assert samples_of(WORK)[key] == before


def test_every_contract_family_is_exposed_before_anything_happened() -> None:
    names = {family.name for family in WORK.collect()}
    assert {
        "fleetprobe_probes",
        "fleetprobe_probe_duration_seconds",
        "fleetprobe_slot_lateness_seconds",
        "fleetprobe_recorder_commands",
        "fleetprobe_notifications",
    } <= names
    samples = samples_of(WORK)
    for outcome in metrics.PROBE_OUTCOMES:
        assert ("fleetprobe_probes_total", (("outcome", outcome),)) in samples
