"""The task queue: a taskiq-nats pull consumer on a JetStream work-queue stream.

Why ``PullBasedJetStreamBroker`` (see README "Why this broker"): it is the one taskiq-nats
broker that is at-least-once (JetStream, acked after the task ran and stored its result),
shares one durable consumer between any number of worker processes, and lets processes
that only kick (scheduler, web) fetch nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from taskiq import AckableMessage
from taskiq_nats import PullBasedJetStreamBroker

from core.natsconn import connect_options
from core.settings import Settings

log = logging.getLogger(__name__)

PROBE_TASK = "fleetprobe.probe"
RECORDER_TASK = "fleetprobe.recorder"


class BrokerConfigError(RuntimeError):
    """The live stream or consumer differs from what this process expects."""


class FleetprobeBroker(PullBasedJetStreamBroker):  # type: ignore[misc]
    """The pull broker, made to survive NATS outages and to check the live config."""

    settings: Settings

    async def startup(self) -> None:
        await super().startup()
        await self.verify_stream()

    async def verify_stream(self) -> None:
        """Refuse a stream that would break delivery (another retention or subjects)."""
        info = await self.js.stream_info(self.stream_config.name or self.stream_name)
        live = info.config
        want = self.stream_config
        problems = []
        if live.retention != want.retention:
            problems.append(f"retention={live.retention} (want {want.retention})")
        if set(live.subjects or []) != set(want.subjects or []):
            problems.append(f"subjects={live.subjects} (want {want.subjects})")
        if problems:
            raise BrokerConfigError(
                f"stream {want.name} exists with another configuration: {', '.join(problems)}"
            )

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                messages = await self.consumer.fetch(
                    batch=self.pull_consume_batch, timeout=self.pull_consume_timeout
                )
            except NatsTimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down or reconnecting: wait and fetch again
                log.warning("fetch failed stream=%s error=%r; retrying", self.stream_name, exc)
                await asyncio.sleep(1.0)
                continue
            for msg in messages:
                yield AckableMessage(data=msg.data, ack=msg.ack)


def stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=settings.jobs_stream,
        subjects=[settings.jobs_subject],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=settings.jobs_duplicate_window_seconds,
    )


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=settings.jobs_durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.jobs_max_deliver,
        max_ack_pending=max(1000, settings.worker_concurrency * 4),
        filter_subject=settings.jobs_subject,
    )


def make_broker(settings: Settings, name: str = "fleetprobe") -> FleetprobeBroker:
    """The same configuration in every process (a differing consumer config would be
    overwritten by whichever process starts last)."""
    kwargs: dict[str, Any] = connect_options(settings, name)
    broker = FleetprobeBroker(
        servers=settings.nats_url,
        subject=settings.jobs_subject,
        stream_name=settings.jobs_stream,
        durable=settings.jobs_durable,
        stream_config=stream_config(settings),
        consumer_config=consumer_config(settings),
        pull_consume_batch=settings.fetch_batch,
        pull_consume_timeout=1.0,
        **kwargs,
    )
    broker.settings = settings
    return broker
