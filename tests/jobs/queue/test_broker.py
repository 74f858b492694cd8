"""Pure checks of the queue's configuration: what makes a live stream or consumer unsafe."""

from __future__ import annotations

from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from core.settings import Settings
from jobs.queue.broker import (
    TASK_HEADER,
    consumer_config,
    consumer_differences,
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
