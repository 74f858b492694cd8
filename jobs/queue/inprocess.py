"""The in-process worker of ``python scheduler.py``: fleetprobe's receiver
(:class:`jobs.queue.receiver.BatchReceiver`) on this event loop.

Stopping is graceful: no new messages are fetched, running tasks get ``grace`` seconds to
finish (and be acknowledged), then whatever is left is cancelled.  A cancelled or
never-started task is not acknowledged, so JetStream delivers it again after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from taskiq import AsyncBroker

from jobs.queue.receiver import BatchReceiver

log = logging.getLogger(__name__)


class InProcessWorker:
    def __init__(self, broker: AsyncBroker, concurrency: int, grace: float) -> None:
        self._broker = broker
        self._concurrency = concurrency
        self._grace = grace
        self._finish = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="taskiq-sync")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._broker.is_worker_process = True
        receiver = BatchReceiver(
            broker=self._broker,
            executor=self._executor,
            max_async_tasks=self._concurrency,
            run_startup=False,
            wait_tasks_timeout=self._grace,
        )
        self._task = asyncio.create_task(receiver.listen(self._finish), name="in-process-worker")
        log.info(
            "in-process worker started concurrency=%d grace_s=%g", self._concurrency, self._grace
        )

    async def stop(self) -> None:
        if self._task is None:
            return
        self._finish.set()
        try:
            # The receiver waits up to `grace` for running tasks; allow it a little more.
            await asyncio.wait_for(asyncio.shield(self._task), self._grace + 2)
        except TimeoutError:
            log.warning("in-process worker did not stop within %gs: cancelling", self._grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception as exc:
            log.warning("in-process worker stopped with error=%r", exc)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._task = None
