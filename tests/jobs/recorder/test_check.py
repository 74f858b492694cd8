"""The recorder:// check through the recorder client, on the suite's nats-server: the
reference recorder (jobs.recorder.simulator), no recorder, a silent one, a garbled one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.natsserver import free_port
from core.settings import Settings
from jobs.probe.kinds.address import RecorderTarget, parse_address
from jobs.recorder import Command, RecorderClient
from jobs.recorder.check import probe_recorder
from jobs.recorder.simulator import RecorderSimulator
from tests.recorder_helpers import fake_recorder, running_simulator


@pytest.fixture
async def simulator(settings: Settings) -> AsyncIterator[RecorderSimulator]:
    async with running_simulator(settings) as sim:
        yield sim


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[RecorderClient]:
    async with RecorderClient(settings, name=f"test-{uuid.uuid4().hex[:8]}") as c:
        yield c


def recorder(task_id: str) -> RecorderTarget:
    target = parse_address(f"recorder://{task_id}")
    assert isinstance(target, RecorderTarget)
    return target


async def test_a_stopped_recorder_answers_status_with_its_reply_as_facts(
    simulator: RecorderSimulator, client: RecorderClient
) -> None:
    facts = await probe_recorder(recorder("cam1"), timeout=5, client=client)
    assert facts.connected is True
    assert (facts.msg_status, facts.app_status) == ("success", "stopped")
    assert facts.error_kind is None
    assert facts.body is not None
    assert json.loads(facts.body)["task_id"] == "cam1"
    assert facts.response_time_ms is not None and facts.response_time_ms >= 0
    assert simulator.handled == 1


async def test_a_recording_recorder_reports_started_and_its_file_in_the_body(
    simulator: RecorderSimulator, client: RecorderClient
) -> None:
    await client.send(Command(task_id="cam2", cmd="start"))
    facts = await probe_recorder(recorder("cam2"), timeout=5, client=client)
    assert (facts.msg_status, facts.app_status) == ("success", "started")
    assert facts.body is not None
    payload = json.loads(facts.body)["payload"]  # what [BODY].payload.file_path reads
    assert payload["file_path"] == "/mnt/rec001.wav"
    assert payload["at_started"].endswith("Z")
    assert payload["segment_time"] == 300.0


async def test_no_recorder_listening_is_no_responder_not_connected(
    client: RecorderClient,
) -> None:
    facts = await probe_recorder(recorder("cam3"), timeout=5, client=client)
    assert facts.connected is False
    assert facts.error_kind == "no_responder"
    assert facts.error is not None and "recorder not running" in facts.error
    assert facts.msg_status is None and facts.body is None


async def test_a_recorder_that_never_answers_is_a_timeout(settings: Settings) -> None:
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, lambda c: None) as seen,
        RecorderClient(settings, timeout=0.3) as client,
    ):
        facts = await probe_recorder(recorder("cam4"), timeout=5, client=client)
    assert (facts.connected, facts.error_kind) == (False, "timeout")
    assert [json.loads(s) for s in seen] == [{"task_id": "cam4", "cmd": "status", "payload": None}]


async def test_the_checks_timeout_bounds_a_slower_client_timeout(settings: Settings) -> None:
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, lambda c: None),
        RecorderClient(settings, timeout=60) as client,
    ):
        facts = await probe_recorder(recorder("cam5"), timeout=0.3, client=client)
    assert (facts.connected, facts.error_kind) == (False, "timeout")
    assert facts.error == "timeout: no recorder reply for task cam5 within 0.3s"


async def test_a_reply_that_is_not_one_is_invalid_reply_but_connected(settings: Settings) -> None:
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, lambda c: b"not json"),
        RecorderClient(settings, timeout=5) as client,
    ):
        facts = await probe_recorder(recorder("cam6"), timeout=5, client=client)
    assert (facts.connected, facts.error_kind) == (True, "invalid_reply")
    assert facts.error is not None and "not JSON" in facts.error


@pytest.mark.timeout(30)
async def test_nats_unreachable_is_a_connection_failure(tmp_path: Path) -> None:
    settings = Settings(NATS_URL=f"nats://127.0.0.1:{free_port()}")  # type: ignore[call-arg]
    client = RecorderClient(settings, connect_timeout=1.0)
    try:
        facts = await probe_recorder(recorder("cam7"), timeout=5, client=client)
    finally:
        await client.close()
    assert (facts.connected, facts.error_kind) == (False, "connection")


async def test_a_closed_client_is_a_failure_not_an_exception(settings: Settings) -> None:
    client = RecorderClient(settings)
    await client.close()
    facts = await probe_recorder(recorder("cam8"), timeout=5, client=client)
    assert (facts.connected, facts.error_kind) == (False, "connection")
    assert facts.error is not None and "closed" in facts.error


async def test_a_task_id_the_command_refuses_is_a_failure_not_an_exception(
    client: RecorderClient,
) -> None:
    facts = await probe_recorder(RecorderTarget("t" * 200), timeout=5, client=client)
    assert (facts.connected, facts.error_kind) == (False, "invalid_command")
    assert facts.error is not None and "task_id" in facts.error
