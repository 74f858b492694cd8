"""``GET /metrics``: the Prometheus text format, read at scrape time.

- the fleet, from the database (:mod:`storage.fleet`, one query):
  ``fleetprobe_devices{state}``, ``fleetprobe_device_state{device_id,name,state}`` (1 for
  the current state, 0 for the others), ``fleetprobe_device_latency_seconds{device_id,
  name}`` (latest result), ``fleetprobe_certificate_expiry_seconds{device_id,name}``;
- the queue, from the JetStream consumer's info: ``fleetprobe_queue_pending``,
  ``fleetprobe_queue_ack_pending``, ``fleetprobe_queue_redelivered_total`` (the
  consumer's own count of messages delivered more than once that are not yet acked: a
  gauge, despite the contract's ``_total``), and ``fleetprobe_queue_up`` (0 when NATS did
  not answer: the three are then absent);
- ``fleetprobe_websocket_clients``, the clients of ``/ws/items`` in this process;
- the work counters of every worker (:class:`jobs.metrics.WorkAggregator`).

With ``API_TOKEN`` set the route needs the token, unless ``METRICS_PUBLIC=true``
(:class:`web.auth.BearerAuth`).  It is not an operation of the OpenAPI spec: it does not
answer JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.metrics import WorkAggregator
from storage.fleet import STATES, FleetDevice, fleet
from storage.types import utcnow
from web.errors import error_response
from web.hub import Hub
from web.services import services_of

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
QUEUE_INFO_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    pending: int
    ack_pending: int
    redelivered: int


def fleet_families(devices: Iterable[FleetDevice], now: datetime) -> list[Metric]:
    """The fleet gauges of ``devices`` at ``now`` (pure)."""
    by_state = GaugeMetricFamily(
        "fleetprobe_devices", "Devices in each state (inactive ones are paused)", labels=["state"]
    )
    state = GaugeMetricFamily(
        "fleetprobe_device_state",
        "1 for the device's current state, 0 for the others",
        labels=["device_id", "name", "state"],
    )
    latency = GaugeMetricFamily(
        "fleetprobe_device_latency_seconds",
        "Latency of the device's latest result",
        labels=["device_id", "name"],
    )
    expiry = GaugeMetricFamily(
        "fleetprobe_certificate_expiry_seconds",
        "Seconds until the certificate of the device's newest result that saw one expires",
        labels=["device_id", "name"],
    )
    counts = dict.fromkeys(STATES, 0)
    for device in devices:
        counts[device.state] = counts.get(device.state, 0) + 1
        ident = [str(device.id), device.name]
        for name in STATES:
            state.add_metric([*ident, name], 1.0 if name == device.state else 0.0)
        if device.latency_ms is not None:
            latency.add_metric(ident, device.latency_ms / 1000)
        if device.certificate_expires_at is not None:
            expiry.add_metric(ident, (device.certificate_expires_at - now).total_seconds())
    for name, count in counts.items():
        by_state.add_metric([name], float(count))
    return [by_state, state, latency, expiry]


def queue_families(info: QueueInfo | None) -> list[Metric]:
    up = GaugeMetricFamily(
        "fleetprobe_queue_up", "1 when the job consumer's info was read from JetStream"
    )
    up.add_metric([], 0.0 if info is None else 1.0)
    if info is None:
        return [up]
    return [
        up,
        GaugeMetricFamily(
            "fleetprobe_queue_pending",
            "Jobs in the stream not yet delivered to a worker",
            value=info.pending,
        ),
        GaugeMetricFamily(
            "fleetprobe_queue_ack_pending",
            "Jobs delivered to a worker and not yet acknowledged",
            value=info.ack_pending,
        ),
        GaugeMetricFamily(
            "fleetprobe_queue_redelivered_total",
            "Jobs delivered more than once and not yet acknowledged (the consumer's count)",
            value=info.redelivered,
        ),
    ]


def websocket_family(clients: int) -> Metric:
    return GaugeMetricFamily(
        "fleetprobe_websocket_clients", "Clients connected to /ws/items here", value=clients
    )


async def queue_info(request: Request) -> QueueInfo | None:
    services = services_of(request)
    settings = services.settings
    try:
        info: Any = await services.nc.jetstream().consumer_info(
            settings.jobs_stream, settings.jobs_durable, timeout=QUEUE_INFO_TIMEOUT
        )
    except Exception as exc:
        log.warning(
            "metrics queue info unavailable stream=%s durable=%s error=%s",
            settings.jobs_stream,
            settings.jobs_durable,
            exc,
        )
        return None
    return QueueInfo(
        pending=int(info.num_pending or 0),
        ack_pending=int(info.num_ack_pending or 0),
        redelivered=int(info.num_redelivered or 0),
    )


class _Scrape(Collector):
    """One scrape's families, as ``generate_latest`` takes them."""

    def __init__(self, families: list[Metric], work: WorkAggregator) -> None:
        self._families = families
        self._work = work

    def collect(self) -> Iterator[Metric]:
        yield from self._families
        yield from self._work.collect()


async def metrics(request: Request) -> Response:
    services = services_of(request)
    hub: Hub = request.app.state.hub
    work: WorkAggregator = request.app.state.metrics
    try:
        devices, queue = await asyncio.gather(fleet(services.engine), queue_info(request))
    except Exception as exc:
        log.warning("metrics fleet query failed error=%s", exc)
        return error_response(503, f"the database did not answer: {type(exc).__name__}: {exc}")
    families = [*fleet_families(devices, utcnow()), *queue_families(queue)]
    families.append(websocket_family(hub.clients))
    body = generate_latest(_Scrape(families, work))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


ROUTES = [Route(METRICS_PATH, metrics, methods=["GET"])]
