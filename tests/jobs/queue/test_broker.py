"""Pure checks of the queue's configuration: what makes a live stream or consumer unsafe;
and how the consumer's fetch loop takes a fetch that timed out (a stub consumer)."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.client import JetStreamContext

from core.settings import Settings
from jobs.queue.broker import (
    TASK_HEADER,
    consumer_config,
    consumer_differences,
    make_broker,
    stream_config,
    stream_differences,
    task_name_of,
)


def test_the_same_settings_build_the_same_config() -> None:
    s = Settings()
    assert consumer_differences(consumer_config(s), consumer_config(s)) == []
    assert stream_differences(stream_config(s), stream_config(s)) == []


def test_the_consumer_waits_longer_than_the_longest_task() -> None:
    s = Settings(PROBE_MAX_TIMEOUT_SECONDS=90)  # type: ignore[call-arg]
    cfg = consumer_config(s)
    assert cfg.ack_wait is not None and cfg.ack_wait > 90
    assert cfg.ack_policy is AckPolicy.EXPLICIT and cfg.filter_subject == s.jobs_subject


def test_a_changed_ack_wait_or_max_deliver_is_reported() -> None:
    want = ConsumerConfig(durable_name="w", ack_wait=60, max_deliver=5, filter_subject="a")
    live = ConsumerConfig(durable_name="w", ack_wait=30, max_deliver=3, filter_subject="a")
    problems = consumer_differences(live, want)
    assert any("ack_wait=30" in p for p in problems)
    assert any("max_deliver=3" in p for p in problems)


def test_a_stream_with_other_retention_or_subjects_is_reported() -> None:
    want = StreamConfig(name="S", subjects=["a"], retention=RetentionPolicy.WORK_QUEUE)
    live = StreamConfig(name="S", subjects=["a", "b"], retention=RetentionPolicy.LIMITS)
    problems = stream_differences(live, want)
    assert len(problems) == 2


def test_task_names_are_read_from_taskiq_messages_only() -> None:
    assert task_name_of(b'{"task_name": "fleetprobe.probe", "args": []}') == "fleetprobe.probe"
    assert task_name_of(b"not json") is None
    assert task_name_of(b'["a list"]') is None
    assert task_name_of(b'{"task_name": 7}') is None
    # fleetprobe's kicks name it in a header: the body is not decoded.
    assert task_name_of(b"not decoded", {TASK_HEADER: "fleetprobe.probe"}) == "fleetprobe.probe"
    assert task_name_of(b'{"task_name": "t"}', {"Nats-Msg-Id": "k"}) == "t"


class _Consumer:
    """Fetches that time out as nats-py does: its own TimeoutError, asyncio's bare one
    (the deadline spent inside fetch), then a real failure."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = [
            NatsTimeoutError(),
            TimeoutError(),  # asyncio.TimeoutError is the builtin
            ConnectionError("gone"),
        ]

    async def fetch(self, batch: int, timeout: float) -> list[object]:
        if not self.errors:
            raise asyncio.CancelledError
        raise self.errors.pop(0)


async def test_a_fetch_timing_out_is_an_empty_fetch_not_an_outage(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker(Settings())  # type: ignore[call-arg]
    # A stub with only fetch(): the fetch loop uses nothing else.
    broker.consumer = cast(JetStreamContext.PullSubscription, _Consumer())
    monkeypatch.setattr(asyncio, "sleep", _no_wait)
    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        async for _ in broker.listen():
            pass
    unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(unavailable) == 1  # the ConnectionError only
    assert "ConnectionError" in unavailable[0].getMessage()


async def _no_wait(_: float) -> None:
    return None
