"""Enqueueing tasks: the message the broker reads, built by hand, and its batch publish.

A message is taskiq's own JSON (the ``TaskiqMessage`` that ``AsyncKicker`` sends; a test
holds the two equal), built without taskiq's pydantic models and published with
JetStream's asynchronous publish: every message of a batch goes out before any PubAck is
awaited.  About 30-40 us of CPU a kick instead of 110-130 us through ``AsyncKicker.kiq``
(docs/performance.md).  This path runs no kick middleware (``pre_send``/``post_send``);
fleetprobe registers none.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any

from nats.js.client import JetStreamContext
from pydantic import BaseModel
from taskiq import AsyncBroker
from taskiq.labels import prepare_label

from jobs.queue.broker import TASK_HEADER, FleetprobeBroker

# JetStream drops a second message with the same id within the stream's duplicate window.
MSG_ID_HEADER = "Nats-Msg-Id"
# How long a batch may take: nats-py's default for one JetStream publish, plus a
# millisecond a message (a publish waits for room once 4,000 PubAcks are pending).
PUBACK_TIMEOUT_SECONDS = 5.0
PUBACK_SECONDS_PER_MESSAGE = 0.001


def task_message(task_id: str, task_name: str, argument: Any, run_key: str) -> bytes:
    """The taskiq message calling ``task_name(argument)``, labelled with the run key
    (taskiq-nats sends labels as NATS headers: the key de-duplicates in JetStream)."""
    label, label_type = prepare_label(run_key)
    return json.dumps(
        {
            "task_id": task_id,
            "task_name": task_name,
            "labels": {MSG_ID_HEADER: label},
            "labels_types": {MSG_ID_HEADER: label_type},
            "args": [argument],
            "kwargs": {},
        }
    ).encode()


def _jetstream(broker: AsyncBroker) -> tuple[JetStreamContext, str]:
    if not isinstance(broker, FleetprobeBroker):
        raise TypeError(f"kicks go through a FleetprobeBroker, not {type(broker).__name__}")
    return broker.js, broker.subject


async def kick_many(
    broker: AsyncBroker, task_name: str, jobs: Sequence[BaseModel], run_keys: Sequence[str]
) -> list[str]:
    """Enqueue one ``task_name`` message per job; returns their taskiq task ids once
    JetStream stored every one.  Raises the first failure (a PubAck error, no stream, or
    ``TimeoutError``); the messages already accepted stay queued, as they would after a
    failed kick one by one."""
    js, subject = _jetstream(broker)
    task_ids: list[str] = []
    acks: list[asyncio.Future[Any]] = []
    timeout = PUBACK_TIMEOUT_SECONDS + PUBACK_SECONDS_PER_MESSAGE * len(jobs)
    try:
        async with asyncio.timeout(timeout):
            for job, run_key in zip(jobs, run_keys, strict=True):
                task_id = uuid.uuid4().hex
                body = task_message(task_id, task_name, job.model_dump(mode="json"), run_key)
                headers = {MSG_ID_HEADER: run_key, TASK_HEADER: task_name}
                acks.append(await js.publish_async(subject, body, headers=headers))
                task_ids.append(task_id)
            await asyncio.gather(*acks)
    finally:
        for ack in acks:  # frees its place among nats-py's pending publishes
            ack.cancel()
    return task_ids


async def kick_keyed(broker: AsyncBroker, task_name: str, job: BaseModel, run_key: str) -> str:
    """Enqueue one task message whose ``run_key`` doubles as the JetStream de-duplication
    id (a second kick of the same run within the window is dropped).  Returns the taskiq
    task id."""
    (task_id,) = await kick_many(broker, task_name, [job], [run_key])
    return task_id
