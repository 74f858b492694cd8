"""Kicks: the message fleetprobe builds is the one taskiq's own kicker would send."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq.message import BrokerMessage

from jobs.probe.job import ProbeJobSpec, one_off_job
from jobs.queue.broker import PROBE_TASK
from jobs.queue.kick import MSG_ID_HEADER, task_message


class CapturingBroker(AsyncBroker):
    """Keeps what is kicked; runs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[BrokerMessage] = []

    async def kick(self, message: BrokerMessage) -> None:
        self.sent.append(message)

    async def listen(self) -> AsyncGenerator[bytes, None]:  # pragma: no cover
        if False:
            yield b""


async def test_the_message_is_what_taskiqs_kicker_sends() -> None:
    spec = ProbeJobSpec(device_id=7, address="http://127.0.0.1:9/x", timeout=3.0, interval=60)
    job = one_off_job(spec, "manual:abc:7", "manual")
    argument = job.model_dump(mode="json")
    broker = CapturingBroker()
    kicker: AsyncKicker[[object], object] = AsyncKicker(
        task_name=PROBE_TASK, broker=broker, labels={MSG_ID_HEADER: job.run_key}
    )
    await kicker.with_task_id("t-1").kiq(argument)

    (sent,) = broker.sent
    ours = task_message("t-1", PROBE_TASK, argument, job.run_key)
    assert json.loads(ours) == json.loads(sent.message)
    # Read back by the worker's formatter into the same message.
    assert broker.formatter.loads(ours) == broker.formatter.loads(sent.message)
    assert sent.labels == {MSG_ID_HEADER: job.run_key}  # sent as the NATS header
