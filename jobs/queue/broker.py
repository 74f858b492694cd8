"""The task queue: a taskiq-nats pull consumer on a JetStream work-queue stream.

Why ``PullBasedJetStreamBroker`` (see README "Why this broker"): it is the one taskiq-nats
broker that is at-least-once (JetStream, acked after the task ran and stored its result),
shares one durable consumer between any number of worker processes, and lets processes
that only kick (scheduler, web) fetch nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError, ServiceUnavailableError
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AckableMessage, AsyncBroker
from taskiq_nats import PullBasedJetStreamBroker

from core.interrupt import Interrupted, interruptible, stop_taskiq_parent
from core.natsconn import connect_options, nats_outage
from core.outage import OutageLog
from core.settings import Settings
from jobs.queue import ownership
from jobs.queue.errors import BrokerConfigError
from storage.migrate import SchemaError

log = logging.getLogger(__name__)

PROBE_TASK = "fleetprobe.probe"
RECORDER_TASK = "fleetprobe.recorder"
NOTIFY_TASK = "fleetprobe.notify"


class UnknownTaskError(BrokerConfigError):
    """The queue carries a task this worker does not have (a newer or other deployment)."""


def stream_differences(live: StreamConfig, want: StreamConfig) -> list[str]:
    """What in a live stream would break delivery (pure; empty when compatible)."""
    problems = []
    if live.retention != want.retention:
        problems.append(f"retention={live.retention} (want {want.retention})")
    if set(live.subjects or []) != set(want.subjects or []):
        problems.append(f"subjects={live.subjects} (want {want.subjects})")
    return problems


def consumer_differences(live: ConsumerConfig, want: ConsumerConfig) -> list[str]:
    """Where a live durable consumer differs from ours (pure; empty when the same).

    ``add_consumer`` would silently overwrite it for every other process, so a
    difference means two deployments disagree: refuse rather than guess.
    """
    problems = []
    if abs((live.ack_wait or 0) - (want.ack_wait or 0)) > 0.001:
        problems.append(f"ack_wait={live.ack_wait}s (want {want.ack_wait}s)")
    if live.max_deliver != want.max_deliver:
        problems.append(f"max_deliver={live.max_deliver} (want {want.max_deliver})")
    if (live.filter_subject or None) != (want.filter_subject or None):
        problems.append(f"filter_subject={live.filter_subject} (want {want.filter_subject})")
    if live.ack_policy != want.ack_policy:
        problems.append(f"ack_policy={live.ack_policy} (want {want.ack_policy})")
    return problems


# fleetprobe's kicks name the task in a header too (jobs.queue.kick), so a worker checks that
# it has the task without decoding the body; messages from elsewhere are decoded.
TASK_HEADER = "Fleetprobe-Task"


def task_name_of(data: bytes, headers: dict[str, str] | None = None) -> str | None:
    """The task name of a message (its header, else the taskiq JSON body), or None when
    it is not one."""
    if headers and (named := headers.get(TASK_HEADER)):
        return named
    try:
        message = json.loads(data)
    except ValueError:
        return None
    name = message.get("task_name") if isinstance(message, dict) else None
    return name if isinstance(name, str) else None


def jetstream_silence(exc: Exception) -> str:
    """What a JetStream API error at start-up says, in words (pure)::

    >>> jetstream_silence(nats_errors.TimeoutError())
    'no-answer'
    >>> jetstream_silence(ServiceUnavailableError(description="not ready"))
    'service-unavailable:not ready'
    """
    if isinstance(exc, ServiceUnavailableError):
        told = exc.description if exc.description not in (None, "None") else None
        return "service-unavailable" + (f":{told}" if told else "")
    return "no-answer"


class FleetprobeBroker(PullBasedJetStreamBroker):  # type: ignore[misc]
    """The pull broker, made to survive NATS outages and to check the live config."""

    # Called (instead of raising into taskiq) when this worker meets a task it lacks.
    on_fatal: Callable[[BrokerConfigError], None] | None = None
    # A redelivery delay for messages this worker cannot run, so another worker takes them.
    unknown_task_delay: float = 5.0
    # The installation this process belongs to (its database's id, jobs.queue.ownership): read
    # at start, recorded on the stream and the consumer, checked against theirs.
    installation_id: str | None = None
    # The host process's engine (python scheduler.py, schema at head), which the
    # installation is read from: no second engine at start, even without a worker.
    engine: AsyncEngine | None = None
    # `taskiq worker` (worker.py): a refusal to start ends the process with one line and
    # exit code 3 instead of a traceback.
    exit_on_refusal: bool = False
    # `taskiq worker` children: SIGINT/SIGTERM during start-up (waiting for NATS) end the
    # process (taskiq's own handler only sets a flag it reads once listening).
    exit_on_signal: bool = False
    # The pause between two tries of a start-up step JetStream did not answer.
    jetstream_retry_seconds: float = 1.0

    def __init__(
        self,
        settings: Settings,
        *args: Any,
        nats_outage: OutageLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The settings every process builds its broker from; the worker's runtime opens
        # with them (jobs.worker.register_tasks).
        self.settings = settings
        # The rate-limited outage lines of this broker's connection (core.outage).
        self.nats_outage = nats_outage
        # Messages handed to taskiq and not acknowledged yet (by id of the NATS message).
        self._unacked: dict[int, Msg] = {}
        self._fetch_outage = OutageLog(f"job queue fetch stream={self.stream_name}")
        self._jetstream_outage = OutageLog(
            f"jetstream stream={self.stream_name}", first=2.0, every=30.0
        )

    async def startup(self) -> None:
        """Connect (waiting while NATS is away, see core.natsconn), create or check the
        stream and consumer; in a worker, open the runtime first (WORKER_STARTUP)."""
        starting = interruptible(self._startup()) if self.exit_on_signal else self._startup()
        try:
            await starting
        except Interrupted as exc:  # only interruptible raises it
            log.info("stopped while starting (%s)", exc)
            raise SystemExit(0) from None
        except (BrokerConfigError, SchemaError) as exc:
            if not self.exit_on_refusal:
                raise
            log.error("refusing to start: %s", exc)
            parent = stop_taskiq_parent()  # a restart cannot help: no endless loop
            if parent is not None:
                log.info("stopping the taskiq worker pid=%d: a restart cannot help", parent)
            raise SystemExit(3) from None

    async def _startup(self) -> None:
        await super().startup()
        if self.nats_outage is not None:
            self.nats_outage.log_recovered(log)

    async def _until_jetstream_answers(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run a start-up step against JetStream's API, again while JetStream does not
        answer: a cluster still electing the stream's leader (nats-py's request timeout),
        a server busy or without JetStream (503).  Each try is whole, so a stream created
        by a try that timed out is found by the next; rate-limited lines say so."""
        while True:
            try:
                await step()
            except (nats_errors.TimeoutError, ServiceUnavailableError) as exc:
                line = self._jetstream_outage.failed(jetstream_silence(exc))
                if line is not None:
                    log.warning(
                        "%s; retrying every %.0fs (is the server started with JetStream, "
                        "nats-server -js?)",
                        line,
                        self.jetstream_retry_seconds,
                    )
                await asyncio.sleep(self.jetstream_retry_seconds)
                continue
            self._jetstream_outage.log_recovered(log)
            return

    async def _add_or_reuse_stream(self) -> None:
        await self._until_jetstream_answers(self._set_up_stream)

    async def _startup_consumer(self) -> None:
        await self._until_jetstream_answers(self._set_up_consumer)

    async def _set_up_stream(self) -> None:
        """Create the stream (or find it), then check it is this installation's and
        refuse one that would break delivery (another retention or subjects), before the
        consumer is touched."""
        ours = self.installation_id = await ownership.installation_of(
            self.state, self.settings, self.engine
        )
        self.stream_config.metadata = ownership.owner_metadata(ours)
        self.stream_config.description = ownership.description(ours)
        # An existing stream is left as it is here (taskiq reuses it); claim_stream decides.
        await super()._add_or_reuse_stream()
        name = self.stream_config.name or self.stream_name
        live = await ownership.claim_stream(self.js, name, ours, self.settings.nats_url)
        problems = stream_differences(live, self.stream_config)
        if problems:
            raise BrokerConfigError(
                f"stream {name} exists with another configuration: {', '.join(problems)}"
            )

    async def _set_up_consumer(self) -> None:
        """Check the durable consumer against ours (owner, settings), then create it."""
        want = self.consumer_config
        stream = self.stream_config.name or self.stream_name
        try:
            live = (await self.js.consumer_info(stream, self.durable)).config
        except NotFoundError:
            live = None
        if self.installation_id is not None:
            if live is not None:  # refuse another installation's consumer
                ownership.check_consumer(live, self.installation_id, self.settings.nats_url)
            if want is not None:  # and record ours (claims an unowned one)
                want.metadata = ownership.owner_metadata(self.installation_id)
        if live is not None and want is not None:
            problems = consumer_differences(live, want)
            if problems:
                raise BrokerConfigError(
                    f"consumer {self.durable} on stream {stream} exists with another "
                    f"configuration: {', '.join(problems)}. Run every process with the same "
                    "settings, or delete the consumer to change them."
                )
        await super()._startup_consumer()

    def log_listening(self) -> None:
        log.info(
            "listening stream=%s durable=%s batch=%d",
            self.stream_name,
            self.durable,
            self.pull_consume_batch,
        )

    async def fetch(self, batch: int) -> list[Msg]:
        """One pull of up to ``batch`` messages (none when the pull timed out or NATS is
        away: then after a second's pause).  Each one is this process's to hand back on
        shutdown until :meth:`ack` (those of the batch not run yet included); one naming a
        task this worker lacks is refused (:meth:`_refuse`) and left out."""
        try:
            messages = await self.consumer.fetch(batch=batch, timeout=self.pull_consume_timeout)
        except TimeoutError:
            # An empty fetch: nats-py's own TimeoutError, or asyncio's bare one when the
            # deadline ran out inside fetch (a busy box: a worker process starting).
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # NATS down or reconnecting: wait and fetch again
            self._fetch_outage.log_failed(log, repr(exc))
            await asyncio.sleep(1.0)
            return []
        self._fetch_outage.log_recovered(log)
        # Fetched is delivered: until acked, each one is ours to hand back on shutdown.
        for msg in messages:
            self._unacked[id(msg)] = msg
        kept: list[Msg] = []
        for msg in messages:
            name = task_name_of(msg.data, msg.headers)
            if name is not None and self.find_task(name) is None:
                self._unacked.pop(id(msg), None)
                await self._refuse(msg, name)
                continue
            # Unparseable messages go on to the receiver, which logs and drops them.
            kept.append(msg)
        return kept

    async def ack(self, msg: Msg) -> None:
        """Acknowledge ``msg`` (its task ran), forgetting it as unacknowledged."""
        self._unacked.pop(id(msg), None)
        await msg.ack()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """taskiq's way in (its ``Receiver``, e.g. a ``taskiq worker`` started without
        ``--receiver``): the messages of :meth:`fetch`, one at a time."""
        self.log_listening()
        while True:
            for msg in await self.fetch(self.pull_consume_batch):
                yield AckableMessage(data=msg.data, ack=self._tracked_ack(msg))

    def _tracked_ack(self, msg: Msg) -> Callable[[], Awaitable[None]]:
        """The message's ack, forgetting it as unacknowledged."""

        async def ack() -> None:
            await self.ack(msg)

        return ack

    async def shutdown(self) -> None:
        """Hand back what this process fetched but never acknowledged (not started, or
        cancelled at the end of the grace time), so another worker gets it now rather
        than after ``ack_wait``."""
        # First drop the pull subscription: a pull request still open on the server (a
        # fetch cut short by the stop) would otherwise take the messages handed back
        # below straight back to this process, which would never see them, and they
        # would come back only after ack_wait.  The server skips a request whose inbox
        # no longer has interest (tests/jobs/queue/test_receiver.py, the stop test).
        consumer = getattr(self, "consumer", None)  # only in a worker process
        if consumer is not None:
            try:
                await consumer.unsubscribe()
            except Exception as exc:  # connection gone: nothing to drop
                log.debug("unsubscribe on shutdown failed error=%r", exc)
        unacked = list(self._unacked.values())
        self._unacked.clear()
        handed_back = 0
        for msg in unacked:
            try:
                await msg.nak()
            except Exception as exc:  # connection gone: ack_wait redelivers it anyway
                log.debug("nak on shutdown failed error=%r", exc)
            else:
                handed_back += 1
        if unacked:
            log.info("handed back unfinished tasks count=%d of=%d", handed_back, len(unacked))
        try:
            # Never connected (stopped while waiting for NATS): nothing to close, and
            # nats-py would assert "Client.connect must be called first".
            if self.client.is_connected or self.client.is_reconnecting:
                await self.client.close()
        except Exception as exc:  # NATS away: the connection is gone either way
            log.info("nats close failed on shutdown error=%r", exc)
        # The worker's shutdown hooks (flush results, close the HTTP client) run even then:
        # taskiq-nats would skip them when close() raised.
        await AsyncBroker.shutdown(self)

    async def _refuse(self, msg: Msg, name: str) -> None:
        """Hand a task this worker lacks back to the queue, then stop: never ack it."""
        try:
            await msg.nak(delay=self.unknown_task_delay)
        except Exception as exc:
            log.warning("nak failed task=%s error=%r", name, exc)
        error = UnknownTaskError(
            f"the queue carries task {name!r}, which this worker does not have "
            f"(registered: {sorted(self.get_all_tasks())}); left it for another worker"
        )
        log.error("%s", error)
        if self.on_fatal is not None:
            self.on_fatal(error)
            return
        raise error


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
    outage = nats_outage(settings, name)
    kwargs: dict[str, Any] = connect_options(settings, name, outage)
    return FleetprobeBroker(
        settings,
        servers=settings.nats_servers,
        nats_outage=outage,
        subject=settings.jobs_subject,
        stream_name=settings.jobs_stream,
        durable=settings.jobs_durable,
        stream_config=stream_config(settings),
        consumer_config=consumer_config(settings),
        pull_consume_batch=settings.fetch_batch,
        pull_consume_timeout=1.0,
        **kwargs,
    )
