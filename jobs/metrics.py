"""The work counters (Prometheus), and how they leave a worker process.

Every process that runs tasks counts them in :data:`WORK`, its own registry:
``fleetprobe_probes_total{outcome}``, ``fleetprobe_probe_duration_seconds``,
``fleetprobe_slot_lateness_seconds``, ``fleetprobe_recorder_commands_total{outcome}``,
``fleetprobe_notifications_total{status}``.  The hot path calls :func:`count_probe` and
friends: the labelled children are resolved once, here, so a probe costs a dict look-up
and a few ``inc``/``observe`` (about a microsecond each), never a label resolution.

A ``taskiq worker`` child is not the web process that Prometheus scrapes, so each worker
runtime runs a :class:`SnapshotPublisher`: every ``METRICS_PUSH_SECONDS`` (and once more
when it stops) it publishes its cumulative samples on core NATS ``METRICS_SUBJECT``,
named by the worker.  Every web process holds a :class:`WorkAggregator` that keeps the
latest snapshot of each worker it has heard from — dead or restarted ones included, so
the totals never go down while the web process lives — and adds them to its own
process's counters at scrape time (its in-process worker counts into the same
:data:`WORK`; its own snapshots, heard back over NATS, are skipped).  Workers on any
host that reaches NATS are counted: Prometheus scrapes the web process only.

This module sits at the bottom of ``jobs`` (below ``events``): anything may import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

from core.natsconn import subscribe_ready

log = logging.getLogger(__name__)

# Which process a snapshot comes from: a web process skips its own (already local).
PROCESS_ID = uuid.uuid4().hex

PROBE_OUTCOMES = ("up", "degraded", "down")
# A reply's msg_status, or why there was no valid reply (jobs.recorder.errors kinds).
RECORDER_OUTCOMES = (
    "success",
    "error",
    "no_responder",
    "timeout",
    "connection",
    "invalid_reply",
    "invalid_command",
)
NOTIFICATION_STATUSES = ("sent", "failed")
# Samples one snapshot may carry (a process has ~60): more is not one of ours.
MAX_SNAPSHOT_SAMPLES = 2000

# Seconds; a probe's whole run (connect, answer, body) and a slot's lateness.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

WORK = CollectorRegistry(auto_describe=True)

PROBES = Counter(
    "fleetprobe_probes_total",
    "Probes run by this installation's workers, by outcome",
    ["outcome"],
    registry=WORK,
)
PROBE_DURATION = Histogram(
    "fleetprobe_probe_duration_seconds",
    "Time one probe took, from its start to its result",
    buckets=DURATION_BUCKETS,
    registry=WORK,
)
SLOT_LATENESS = Histogram(
    "fleetprobe_slot_lateness_seconds",
    "Scheduled probes: from the slot time to the probe's start",
    buckets=LATENESS_BUCKETS,
    registry=WORK,
)
RECORDER_COMMANDS = Counter(
    "fleetprobe_recorder_commands_total",
    "Recorder commands sent, by reply status or failure kind",
    ["outcome"],
    registry=WORK,
)
NOTIFICATIONS = Counter(
    "fleetprobe_notifications_total",
    "Notification deliveries, by status",
    ["status"],
    registry=WORK,
)

# Children resolved once (the hot path looks them up in a dict, not by label).
_PROBE_CHILDREN = {outcome: PROBES.labels(outcome) for outcome in PROBE_OUTCOMES}
_RECORDER_CHILDREN = {outcome: RECORDER_COMMANDS.labels(outcome) for outcome in RECORDER_OUTCOMES}
_NOTIFICATION_CHILDREN = {status: NOTIFICATIONS.labels(status) for status in NOTIFICATION_STATUSES}
_observe_duration = PROBE_DURATION.observe
_observe_lateness = SLOT_LATENESS.observe


def count_probe(outcome: str, duration_s: float, lateness_s: float | None = None) -> None:
    """One probe run: its outcome (up/degraded/down), how long it took and, for a
    scheduled slot, how late it started."""
    child = _PROBE_CHILDREN.get(outcome)
    (child if child is not None else PROBES.labels(outcome)).inc()
    _observe_duration(duration_s)
    if lateness_s is not None:
        _observe_lateness(max(lateness_s, 0.0))


def count_recorder_command(outcome: str) -> None:
    """One recorder command sent: ``success``/``error`` (the reply) or a failure kind."""
    child = _RECORDER_CHILDREN.get(outcome)
    (child if child is not None else RECORDER_COMMANDS.labels(outcome)).inc()


def count_notification(status: str) -> None:
    """One notification finished ``sent`` or ``failed`` (counted once, not per attempt)."""
    child = _NOTIFICATION_CHILDREN.get(status)
    (child if child is not None else NOTIFICATIONS.labels(status)).inc()


# --- snapshots: a process's samples, cumulative, as JSON --------------------------------

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def samples_of(registry: CollectorRegistry) -> dict[SampleKey, float]:
    """Every cumulative sample of ``registry`` (not the ``_created`` timestamps)."""
    out: dict[SampleKey, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def encode_snapshot(worker: str, samples: Mapping[SampleKey, float]) -> bytes:
    return json.dumps(
        {
            "worker": worker,
            "process": PROCESS_ID,
            "samples": [[name, dict(labels), value] for (name, labels), value in samples.items()],
        },
        separators=(",", ":"),
    ).encode()


class SnapshotError(ValueError):
    """A message on the metrics subject that is not a snapshot."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    worker: str
    process: str
    samples: dict[SampleKey, float]

    @property
    def key(self) -> str:
        return f"{self.worker}/{self.process}"


def decode_snapshot(data: bytes) -> Snapshot:
    """A snapshot from its JSON; :class:`SnapshotError` saying what is wrong otherwise.

    >>> decode_snapshot(b'{"worker":"w","process":"p","samples":[["a_total",{"x":"1"},2]]}')
    Snapshot(worker='w', process='p', samples={('a_total', (('x', '1'),)): 2.0})
    """
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise SnapshotError("not a JSON object")
    worker, process, raw = body.get("worker"), body.get("process"), body.get("samples")
    if not isinstance(worker, str) or not worker or not isinstance(process, str):
        raise SnapshotError("worker and process must be strings")
    if not isinstance(raw, list):
        raise SnapshotError("samples must be a list")
    if len(raw) > MAX_SNAPSHOT_SAMPLES:
        raise SnapshotError(f"{len(raw)} samples, more than {MAX_SNAPSHOT_SAMPLES}")
    samples: dict[SampleKey, float] = {}
    for i, item in enumerate(raw):
        if not (isinstance(item, list) and len(item) == 3):
            raise SnapshotError(f"samples[{i}]: not [name, labels, value]")
        name, labels, value = item
        if (
            not isinstance(name, str)
            or not isinstance(labels, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
            or isinstance(value, bool)
            or not isinstance(value, int | float)
        ):
            raise SnapshotError(f"samples[{i}]: not [name, labels, value]")
        samples[(name, tuple(sorted(labels.items())))] = float(value)
    return Snapshot(worker, process, samples)


def merged_families(
    registry: CollectorRegistry, others: Iterable[Mapping[SampleKey, float]]
) -> list[Metric]:
    """``registry``'s families with the samples of ``others`` added to its own (pure but
    for reading the registry).  Samples another process has and this one lacks (a label
    value never seen here) are added to their family; names no family here knows (a
    newer worker) are left out."""
    extra: dict[SampleKey, float] = {}
    for samples in others:
        for key, value in samples.items():
            extra[key] = extra.get(key, 0.0) + value
    families: list[Metric] = []
    for family in registry.collect():
        merged = Metric(family.name, family.documentation, family.type, family.unit)
        seen: set[SampleKey] = set()
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a sum of processes has no single creation time
            key = (sample.name, tuple(sorted(sample.labels.items())))
            seen.add(key)
            merged.add_sample(sample.name, dict(sample.labels), sample.value + extra.get(key, 0.0))
        for key, value in extra.items():
            if key not in seen and _belongs(key[0], family):
                merged.add_sample(key[0], dict(key[1]), value)
        families.append(merged)
    return families


def _belongs(sample_name: str, family: Metric) -> bool:
    if family.type == "counter":
        return sample_name == f"{family.name}_total"
    if family.type == "histogram":
        return sample_name in {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
    return sample_name == family.name


# --- the worker side ----------------------------------------------------------------------


class SnapshotPublisher:
    """Publishes this process's :data:`WORK` samples every ``interval`` seconds, and once
    more on :meth:`stop` (what the last interval counted is not lost)."""

    def __init__(
        self, nc: Client, subject: str, worker: str, interval: float, registry: CollectorRegistry
    ) -> None:
        self._nc = nc
        self._subject = subject
        self._worker = worker
        self._interval = interval
        self._registry = registry
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="metrics-snapshots")

    async def publish(self) -> None:
        """One snapshot now; a failure (NATS down) is logged, the next one carries on."""
        try:
            await self._nc.publish(
                self._subject, encode_snapshot(self._worker, samples_of(self._registry))
            )
        except Exception as exc:
            log.warning("metrics snapshot not published worker=%s error=%s", self._worker, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.publish()
        with contextlib.suppress(Exception):
            await self._nc.flush(timeout=2)

    async def _loop(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(self._interval)


# --- the web side -------------------------------------------------------------------------


@dataclass
class _Heard:
    samples: dict[SampleKey, float]
    at: float


@dataclass
class WorkAggregator:
    """The latest snapshot of every worker heard on the metrics subject, added to this
    process's own counters at scrape time (a Prometheus collector).

    A worker that stops or restarts (a new process, a new name) keeps its last snapshot
    here, so the sums only grow.  At most ``max_workers`` are kept apart; beyond that the
    longest silent one is folded into a retired sum (its counts stay in the totals)."""

    registry: CollectorRegistry
    interval: float
    max_workers: int = 1000
    clock: Callable[[], float] = time.monotonic
    _heard: dict[str, _Heard] = field(default_factory=dict)
    _retired: dict[SampleKey, float] = field(default_factory=dict)
    _unlisten: Callable[[], Awaitable[None]] | None = None
    rejected: int = 0

    def receive(self, data: bytes) -> None:
        """Take one snapshot message; a bad one is logged and skipped."""
        try:
            snapshot = decode_snapshot(data)
        except SnapshotError as exc:
            self.rejected += 1
            log.warning("metrics snapshot skipped bytes=%d error=%s", len(data), exc)
            return
        if snapshot.process == PROCESS_ID:
            return  # this process's own counters are read directly
        self._heard.pop(snapshot.key, None)  # re-inserted last: the dict stays oldest-first
        self._heard[snapshot.key] = _Heard(snapshot.samples, self.clock())
        while len(self._heard) > self.max_workers:
            oldest = next(iter(self._heard))
            for key, value in self._heard.pop(oldest).samples.items():
                self._retired[key] = self._retired.get(key, 0.0) + value
            log.info("metrics worker retired worker=%s", oldest)

    def live_workers(self) -> int:
        """Workers heard within the last three intervals."""
        horizon = self.clock() - 3 * self.interval
        return sum(1 for heard in self._heard.values() if heard.at >= horizon)

    def collect(self) -> Iterator[Metric]:
        others = [heard.samples for heard in self._heard.values()]
        others.append(self._retired)
        yield from merged_families(self.registry, others)
        workers = Metric(
            "fleetprobe_metrics_workers",
            "Other processes whose work counters reached this one in the last three "
            "METRICS_PUSH_SECONDS",
            "gauge",
        )
        workers.add_sample("fleetprobe_metrics_workers", {}, float(self.live_workers()))
        yield workers

    async def start(self, nc: Client, subject: str) -> None:
        async def on_msg(msg: Msg) -> None:
            self.receive(msg.data)

        sub = await subscribe_ready(nc, subject, cb=on_msg)

        async def unlisten() -> None:
            with contextlib.suppress(Exception):  # the connection may be closing
                await sub.unsubscribe()

        self._unlisten = unlisten

    async def stop(self) -> None:
        if self._unlisten is not None:
            await self._unlisten()
            self._unlisten = None
