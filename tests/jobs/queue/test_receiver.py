"""fleetprobe's receiver (jobs.queue.receiver.BatchReceiver) on a real nats-server: what
it runs, when it acknowledges, how it stops.  The tasks are the test's own, registered on
a FleetprobeBroker; "acknowledged" is read from JetStream (a work-queue stream keeps a
message until it is acked)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq.acks import AcknowledgeType

from core.settings import Settings
from jobs.queue.broker import TASK_HEADER, FleetprobeBroker, UnknownTaskError, make_broker
from jobs.queue.kick import MSG_ID_HEADER, kick_many, task_message
from jobs.queue.receiver import BatchReceiver
from tests.helpers import wait_for

WORK = "test.work"
SYNC = "test.sync"


class Job(BaseModel):
    n: int
    sleep: float = 0.0


class Record:
    """What the test's tasks saw."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.done: list[int] = []
        self.cancelled: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.release.set()


@pytest.fixture
async def queue(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[tuple[FleetprobeBroker, Record]]:
    broker = make_broker(settings, name="test-receiver")
    broker.engine = engine
    seen = Record()

    async def work(job: Job) -> None:
        seen.args.append(job)
        seen.running += 1
        seen.most_at_once = max(seen.most_at_once, seen.running)
        try:
            await seen.release.wait()
            await asyncio.sleep(job.sleep)
            if job.n < 0:
                raise ValueError(f"job {job.n} fails")
            seen.done.append(job.n)
        except asyncio.CancelledError:
            seen.cancelled.append(job.n)
            raise
        finally:
            seen.running -= 1

    def sync_work(job: Job) -> None:
        seen.args.append(job)
        seen.done.append(job.n)

    broker.register_task(work, task_name=WORK)
    broker.register_task(sync_work, task_name=SYNC)
    broker.is_worker_process = True
    await broker.startup()
    try:
        yield broker, seen
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


async def kick(broker: FleetprobeBroker, jobs: list[Job], task: str = WORK) -> None:
    await kick_many(broker, task, jobs, [f"{task}:{job.n}:{id(job)}" for job in jobs])


async def stored(broker: FleetprobeBroker) -> int:
    """Messages still in the stream: not acknowledged."""
    info = await broker.js.stream_info(broker.stream_name)
    return int(info.state.messages)


@contextlib.asynccontextmanager
async def receiving(
    broker: FleetprobeBroker, concurrency: int = 20, grace: float = 5.0, **kwargs: Any
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[None]]]:
    receiver = BatchReceiver(
        broker,
        max_async_tasks=concurrency,
        run_startup=False,
        wait_tasks_timeout=grace,
        **kwargs,
    )
    finish = asyncio.Event()
    task = asyncio.create_task(receiver.listen(finish))
    try:
        yield finish, task
    finally:
        finish.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, grace + 10)


def until(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


async def test_every_task_runs_once_with_its_argument_validated_within_the_limit(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, seen = queue
    seen.release.clear()  # the first tasks wait: the limit fills up
    await kick(broker, [Job(n=i) for i in range(300)])
    async with receiving(broker, concurrency=20):
        await wait_for(until(lambda: seen.running == 20), what="20 tasks running")
        assert len(seen.args) == 20  # no 21st started while 20 run
        seen.release.set()
        await wait_for(until(lambda: len(seen.done) == 300), what="300 tasks done")
        await wait_for(lambda: _is(stored(broker), 0), what="every message acknowledged")
    assert sorted(seen.done) == list(range(300))
    assert all(isinstance(arg, Job) for arg in seen.args)
    assert seen.most_at_once == 20


async def _is(value: Awaitable[int], want: int) -> bool:
    return await value == want


async def test_a_message_is_acknowledged_only_after_its_task_returned(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, seen = queue
    seen.release.clear()
    await kick(broker, [Job(n=i) for i in range(5)])
    async with receiving(broker):
        await wait_for(until(lambda: seen.running == 5), what="5 tasks running")
        assert await stored(broker) == 5  # running: none acknowledged
        seen.release.set()
        await wait_for(until(lambda: len(seen.done) == 5), what="5 tasks done")
        await wait_for(lambda: _is(stored(broker), 0), what="all acknowledged")


async def test_when_received_acknowledges_before_the_task_runs(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, seen = queue
    seen.release.clear()
    await kick(broker, [Job(n=1)])
    async with receiving(broker, ack_type=AcknowledgeType.WHEN_RECEIVED):
        await wait_for(until(lambda: seen.running == 1), what="the task running")
        await wait_for(lambda: _is(stored(broker), 0), what="acknowledged while it runs")
        assert seen.done == []
        seen.release.set()


async def test_stopping_acknowledges_what_finished_and_hands_back_what_did_not(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, seen = queue
    await kick(
        broker, [Job(n=i) for i in range(10)] + [Job(n=100 + i, sleep=3600) for i in range(4)]
    )
    async with receiving(broker, grace=0.5) as (finish, task):
        await wait_for(until(lambda: len(seen.done) == 10), what="the quick tasks done")
        await wait_for(until(lambda: seen.running == 4), what="the slow tasks running")
        finish.set()
        await asyncio.wait_for(task, 30)  # the grace, then the slow ones cancelled
    assert sorted(seen.cancelled) == [100, 101, 102, 103]
    assert await stored(broker) == 4  # cancelled: not acknowledged
    await broker.shutdown()  # hands them back at once (nak), not after ack_wait
    again = make_broker(broker.settings, name="test-receiver-2")
    again.engine = broker.engine
    again.register_task(_nothing, task_name=WORK)
    await again.startup()
    try:
        messages = await again.fetch(10)
        assert len(messages) == 4
        assert all(msg.metadata.num_delivered == 2 for msg in messages)
    finally:
        await again.shutdown()


async def _nothing(job: Job) -> None:
    return None


async def test_a_task_that_raises_or_a_message_that_does_not_decode_is_logged_and_acknowledged(
    queue: tuple[FleetprobeBroker, Record], caplog: pytest.LogCaptureFixture
) -> None:
    broker, seen = queue
    await kick(broker, [Job(n=-1), Job(n=2)])
    await broker.js.publish(broker.subject, b"not json", headers={TASK_HEADER: WORK})
    with caplog.at_level(logging.WARNING, logger="jobs.queue.receiver"):
        async with receiving(broker):
            await wait_for(lambda: _is(stored(broker), 0), what="all three acknowledged")
    assert seen.done == [2]
    text = caplog.text
    assert "job -1 fails" in text
    assert "cannot parse message" in text


async def test_a_timeout_label_bounds_the_task(
    queue: tuple[FleetprobeBroker, Record], caplog: pytest.LogCaptureFixture
) -> None:
    broker, seen = queue
    body = task_message("t-1", WORK, {"n": 5, "sleep": 3600}, "slow")
    body = body.replace(b'"labels": {', b'"labels": {"timeout": 0.2, ')
    await broker.js.publish(
        broker.subject, body, headers={TASK_HEADER: WORK, MSG_ID_HEADER: "slow"}
    )
    with caplog.at_level(logging.ERROR, logger="jobs.queue.receiver"):
        async with receiving(broker):
            await wait_for(lambda: _is(stored(broker), 0), what="the timed-out task acknowledged")
    assert seen.done == [] and seen.cancelled == [5]
    assert "TimeoutError" in caplog.text


async def test_a_sync_task_runs_through_taskiqs_own_callback(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, seen = queue
    await kick(broker, [Job(n=7)], task=SYNC)
    async with receiving(broker, executor=None):
        await wait_for(lambda: _is(stored(broker), 0), what="the sync task acknowledged")
    assert seen.done == [7] and isinstance(seen.args[0], Job)


async def test_an_unknown_task_is_handed_back_and_stops_the_receiver(
    queue: tuple[FleetprobeBroker, Record],
) -> None:
    broker, _ = queue
    broker.unknown_task_delay = 60.0
    await broker.js.publish(broker.subject, b"{}", headers={TASK_HEADER: "test.missing"})
    receiver = BatchReceiver(broker, max_async_tasks=5, run_startup=False, wait_tasks_timeout=1)
    with pytest.raises(UnknownTaskError):
        await asyncio.wait_for(receiver.listen(asyncio.Event()), 30)
    assert await stored(broker) == 1  # never acknowledged
