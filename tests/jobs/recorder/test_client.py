"""RecorderClient and RecorderService against a real nats-server: the reference recorder,
scripted fake recorders, no recorder at all."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.natsserver import EmbeddedNats, free_port
from core.settings import Settings
from jobs.recorder import (
    ClientState,
    Command,
    InvalidReplyError,
    NoResponderError,
    RecorderClient,
    RecorderConnectionError,
    RecorderService,
    RecorderTimeoutError,
    StartPayload,
    StopPayload,
)
from jobs.recorder.simulator import RecorderSimulator
from tests.recorder_helpers import (
    RoomyNats,
    fake_recorder,
    reply_bytes,
    roomy_nats,
    running_simulator,
)


@pytest.fixture
async def simulator(settings: Settings) -> AsyncIterator[RecorderSimulator]:
    async with running_simulator(settings) as sim:
        yield sim


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[RecorderClient]:
    async with RecorderClient(settings, name=f"test-{uuid.uuid4().hex[:8]}") as c:
        yield c


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoomyNats]:
    with roomy_nats(tmp_path_factory.mktemp("roomy")) as server:
        yield server


async def test_full_cycle_start_status_stop_against_the_reference_recorder(
    client: RecorderClient, simulator: RecorderSimulator
) -> None:
    service = RecorderService(client)
    started = await service.start(StartPayload(vid_byterate=2500, segment_time=60))
    assert (started.task_id, started.msg_status, started.app_status) == (
        "task01",
        "success",
        "started",
    )
    assert started.payload.file_path == "/mnt/rec001.wav"
    assert started.payload.at_stopped is None
    assert started.payload.at_started is not None

    status = await service.status()
    assert status.app_status == "started"
    assert status.payload.segment_time == 60.0
    assert status.payload.at_started == started.payload.at_started

    stopped = await service.stop(StopPayload(segment_time=60))
    assert (stopped.msg_status, stopped.app_status) == ("success", "stopped")
    assert stopped.payload.file_path == "/mnt/rec001.wav"
    assert stopped.payload.at_stopped is not None
    assert stopped.payload.at_stopped >= stopped.payload.at_started  # type: ignore[operator]

    assert (await service.status()).app_status == "stopped"


async def test_a_refused_command_is_a_valid_reply_not_an_exception(
    client: RecorderClient, simulator: RecorderSimulator
) -> None:
    service = RecorderService(client, default_task_id="cam7")
    stop = await service.stop()
    assert (stop.task_id, stop.msg_status, stop.app_status) == ("cam7", "error", "stopped")
    assert stop.reason == "not recording"
    await service.start()
    again = await service.start()
    assert (again.msg_status, again.app_status) == ("error", "started")


async def test_many_task_ids_run_in_parallel_over_one_client(
    client: RecorderClient, simulator: RecorderSimulator
) -> None:
    service = RecorderService(client)
    task_ids = [f"rec_task_{i:02d}" for i in range(40)]
    started = await asyncio.gather(*(service.start(task_id=t) for t in task_ids))
    assert [r.task_id for r in started] == task_ids
    assert all(r.msg_status == "success" and r.app_status == "started" for r in started)
    statuses = await asyncio.gather(*(service.status(task_id=t) for t in task_ids))
    assert all(s.app_status == "started" for s in statuses)
    stopped = await asyncio.gather(*(service.stop(task_id=t) for t in task_ids[::2]))
    assert all(s.app_status == "stopped" for s in stopped)
    assert {t: s.app_status for t, s in simulator.states.items()} == {
        t: "stopped" if i % 2 == 0 else "started" for i, t in enumerate(task_ids)
    }


@pytest.mark.timeout(20)
async def test_no_responder_is_reported_at_once_as_recorder_not_running(
    settings: Settings,
) -> None:
    # A 60 s timeout: waiting for it would trip this test's 20 s limit.
    async with RecorderClient(settings, timeout=60) as client:
        with pytest.raises(NoResponderError, match="recorder not running") as info:
            await client.send(Command(task_id="t1", cmd="status"))
    assert info.value.retryable and info.value.kind == "no_responder"
    assert (info.value.task_id, info.value.cmd) == ("t1", "status")


async def test_a_recorder_that_never_answers_times_out(settings: Settings) -> None:
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, lambda c: None) as seen,
        RecorderClient(settings, timeout=0.3) as client,
    ):
        with pytest.raises(RecorderTimeoutError, match=r"within 0.3s") as info:
            await client.send(Command(task_id="t1", cmd="start"))
    assert len(seen) == 1
    assert info.value.retryable and info.value.latency_ms is not None


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (lambda c: b"<html>502</html>", "not JSON"),
        (lambda c: b'"started"', "not a JSON object"),
        (
            lambda c: json.dumps({"task_id": c["task_id"], "status": "ok"}).encode(),
            "wrong fields: msg_status: Field required",
        ),
        (lambda c: reply_bytes(c, app_status="recording"), "wrong fields: app_status"),
        (lambda c: reply_bytes(c, task_id="someone-else"), "for task_id='someone-else', not 't1'"),
        (lambda c: reply_bytes(c, payload={"at_started": "08:55 yesterday"}), "payload.at_started"),
        (lambda c: b"x" * 100_000, "100000 bytes exceeds the 65536-byte limit"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "missing-fields",
        "bad-status",
        "other-task",
        "bad-time",
        "oversized",
    ],
)
async def test_invalid_replies_are_refused_with_the_reason(
    settings: Settings, client: RecorderClient, answer: Any, says: str
) -> None:
    async with fake_recorder(settings.nats_url, settings.nats_subject, answer):
        with pytest.raises(InvalidReplyError) as info:
            await client.send(Command(task_id="t1", cmd="status"))
    assert says in str(info.value)
    assert not info.value.retryable and info.value.kind == "invalid_reply"
    assert len(info.value.excerpt) <= 200


async def test_a_10_mb_reply_is_refused_as_oversized(roomy: RoomyNats, tmp_path: Path) -> None:
    settings = Settings(NATS_URL=roomy.url, NATS_SUBJECT=f"rec.{uuid.uuid4().hex}")
    huge = b'{"task_id": "t1", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, lambda c: huge),
        RecorderClient(settings, timeout=10) as client,
    ):
        with pytest.raises(InvalidReplyError, match="exceeds the 65536-byte limit"):
            await client.send(Command(task_id="t1", cmd="status"))
        # the client survives it: the next reply is read normally
    async with (
        fake_recorder(settings.nats_url, settings.nats_subject, reply_bytes),
        RecorderClient(settings) as client,
    ):
        assert (await client.send(Command(task_id="t1", cmd="status"))).response.task_id == "t1"


async def test_one_connection_carries_every_call(roomy: RoomyNats) -> None:
    settings = Settings(NATS_URL=roomy.url, NATS_SUBJECT=f"rec.{uuid.uuid4().hex}")
    name = f"reuse-{uuid.uuid4().hex[:8]}"
    async with running_simulator(settings), RecorderClient(settings, name=name) as client:
        nc = client.connection
        assert nc is not None
        service = RecorderService(client)
        await service.start(task_id="a")
        for _ in range(5):
            await service.status(task_id="a")
        await asyncio.gather(*(service.status(task_id=f"p{i}") for i in range(20)))
        await service.stop(task_id="a")
        assert client.connection is nc
        assert nc.stats["out_msgs"] == 27 and nc.stats["reconnects"] == 0
        server_side = await asyncio.to_thread(roomy.connections, name)
        assert len(server_side) == 1
    assert nc.is_closed
    assert client.state is ClientState.CLOSED
    assert await asyncio.to_thread(roomy.connections, name) == []


async def test_concurrent_first_calls_open_a_single_connection(
    settings: Settings, simulator: RecorderSimulator
) -> None:
    client = RecorderClient(settings)
    assert client.state is ClientState.UNOPENED and client.connection is None
    try:
        await asyncio.gather(
            *(client.send(Command(task_id=f"t{i}", cmd="status")) for i in range(10))
        )
        nc = client.connection
        assert nc is not None and nc.stats["out_msgs"] == 10
    finally:
        await client.close()


async def test_a_closed_client_refuses_to_send(settings: Settings) -> None:
    client = RecorderClient(settings)
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.send(Command(task_id="t", cmd="status"))


async def test_a_borrowed_connection_is_used_but_not_closed(
    settings: Settings, simulator: RecorderSimulator
) -> None:
    import nats

    nc = await nats.connect(settings.nats_url)
    try:
        async with RecorderClient(settings, connection=nc) as client:
            reply = await client.send(Command(task_id="t", cmd="status"))
            assert reply.response.app_status == "stopped"
        assert nc.is_connected
    finally:
        await nc.close()


@pytest.mark.timeout(30)
async def test_no_nats_server_is_a_connection_error(tmp_path: Path) -> None:
    settings = Settings(NATS_URL=f"nats://127.0.0.1:{free_port()}")
    client = RecorderClient(settings, connect_timeout=1.5)
    with pytest.raises(RecorderConnectionError, match="cannot connect") as info:
        await client.send(Command(task_id="t", cmd="status"))
    assert info.value.retryable
    await client.close()


async def test_every_call_is_logged_with_task_id_cmd_latency_and_outcome(
    settings: Settings,
    client: RecorderClient,
    simulator: RecorderSimulator,
    caplog: pytest.LogCaptureFixture,
    nats_server: EmbeddedNats,
) -> None:
    with caplog.at_level(logging.INFO, logger="jobs.recorder.client"):
        await client.send(Command(task_id="log1", cmd="start"))
        with pytest.raises(InvalidReplyError):
            await RecorderClient(settings, connection=client.connection, max_reply_bytes=10).send(
                Command(task_id="log2", cmd="status")
            )
    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.recorder.client"]
    ok = next(line for line in lines if "task_id=log1" in line)
    assert "cmd=start outcome=ok msg_status=success app_status=started latency_ms=" in ok
    bad = next(line for line in lines if "task_id=log2" in line)
    assert "cmd=status outcome=invalid_reply latency_ms=" in bad
