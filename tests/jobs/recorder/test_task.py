"""The recorder task through the real queue: kicked onto JetStream, run by the in-process
worker, sent to a recorder over NATS, stored once in SQLite, announced on the events
subject.  A recorder failure is a stored row, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.settings import Settings
from jobs.metrics import WORK, samples_of
from jobs.recorder.job import RecorderJob, one_off_job
from jobs.recorder.kick import kick_recorder
from jobs.recorder.result import CommandResultRead
from jobs.recorder.task import send_recorder_command
from jobs.worker import WorkerRuntime
from storage.db import session_factory
from storage.recorder_models import CommandResult
from tests.helpers import collect_events, running_worker, wait_for
from tests.recorder_helpers import fake_recorder, reply_bytes, running_simulator


async def rows(engine: AsyncEngine, run_key: str | None = None) -> list[CommandResult]:
    async with session_factory(engine)() as session:
        stmt = select(CommandResult)
        if run_key is not None:
            stmt = stmt.where(CommandResult.run_key == run_key)
        return list((await session.exec(stmt)).all())


async def stored(engine: AsyncEngine, run_key: str) -> CommandResult:
    async def present() -> bool:
        return bool(await rows(engine, run_key))

    await wait_for(present, timeout=15, what=f"result {run_key}")
    (row,) = await rows(engine, run_key)
    return row


async def test_a_queued_command_stores_one_result_and_announces_it(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = one_off_job("cam1", "start", {"segment_time": 60.0})
    async with (
        running_simulator(settings) as simulator,
        collect_events(settings) as events,
        running_worker(settings) as broker,
    ):
        await kick_recorder(broker, job)
        row = await stored(engine, job.run_key)

        async def announced() -> bool:
            return any(e["type"] == "recorder.command" for e in events)

        await wait_for(announced, what="recorder.command event")

    assert (row.task_id, row.cmd, row.msg_status, row.app_status) == (
        "cam1",
        "start",
        "success",
        "started",
    )
    assert row.payload == {
        "segment_time": 60.0,
        "snd_source": "pulsesrc01",
        "snd_byterate": 96,
        "vid_stream": "main",
        "vid_byterate": 2000,
    }
    assert row.reply_payload is not None
    assert row.reply_payload["file_path"] == "/mnt/rec001.wav"
    assert row.reply_payload["at_stopped"] is None  # the recorder's "" while recording
    assert row.reply_payload["at_started"].endswith("Z")
    assert row.latency_ms is not None and row.latency_ms > 0
    assert row.error_kind is None and row.source == "api"
    assert simulator.handled == 1

    (event,) = [e for e in events if e["type"] == "recorder.command"]
    assert event["payload"] == CommandResultRead.model_validate(row).model_dump(mode="json")


async def test_the_same_run_key_kicked_twice_is_sent_once_and_stored_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = one_off_job("cam2", "status", None)
    async with running_simulator(settings) as simulator, running_worker(settings) as broker:
        await kick_recorder(broker, job)
        await kick_recorder(broker, job)  # JetStream drops it: same Nats-Msg-Id
        await stored(engine, job.run_key)
        other = one_off_job("cam2", "status", None)
        await kick_recorder(broker, other)
        await stored(engine, other.run_key)
    assert len(await rows(engine)) == 2
    assert simulator.handled == 2


async def test_a_redelivered_task_whose_result_is_stored_does_not_resend(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = one_off_job("cam3", "start", None)
    runtime = await WorkerRuntime.open(settings)
    try:
        async with running_simulator(settings) as simulator, collect_events(settings) as events:
            first = await send_recorder_command(job, runtime)
            again = await send_recorder_command(job, runtime)  # as after a redelivery
            await runtime.nc.flush()

            async def announced() -> bool:
                return len(events) >= 1

            await wait_for(announced, what="the first event")
    finally:
        await runtime.close()
    assert again == first
    assert simulator.handled == 1
    assert [e["payload"]["run_key"] for e in events] == [job.run_key]
    assert len(await rows(engine, job.run_key)) == 1


async def test_the_result_returned_and_announced_is_the_row_as_stored(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = one_off_job("cam7", "status", None)
    runtime = await WorkerRuntime.open(settings)
    try:
        async with running_simulator(settings), collect_events(settings) as events:
            result = await send_recorder_command(job, runtime)

            async def announced() -> bool:
                return len(events) >= 1

            await wait_for(announced, what="the event")
    finally:
        await runtime.close()
    (row,) = await rows(engine, job.run_key)
    as_stored = CommandResultRead.model_validate(row).model_dump(mode="json")
    assert result == as_stored
    assert [e["payload"] for e in events] == [as_stored]


async def test_a_refused_command_is_stored_as_a_valid_reply(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = one_off_job("cam4", "stop", None)
    async with running_simulator(settings), running_worker(settings) as broker:
        await kick_recorder(broker, job)
        row = await stored(engine, job.run_key)
    assert (row.msg_status, row.app_status, row.reason) == ("error", "stopped", "not recording")
    assert row.error_kind is None and row.payload == {"segment_time": 300.0}


def never(command: dict[str, Any]) -> bytes | None:
    return None


@pytest.mark.parametrize(
    ("recorder", "kind", "says"),
    [
        (None, "no_responder", "recorder not running"),
        (never, "timeout", "within 0.3s"),
        (lambda c: b"{oops", "invalid_reply", "not JSON"),
        (lambda c: reply_bytes(c, task_id="nope"), "invalid_reply", "task_id='nope'"),
    ],
    ids=["no-responder", "timeout", "not-json", "other-task"],
)
async def test_a_recorder_failure_is_stored_as_data_not_raised(
    settings: Settings, engine: AsyncEngine, recorder: Any, kind: str, says: str
) -> None:
    settings = settings.model_copy(update={"nats_timeout": 0.3})
    job = one_off_job("cam5", "status", None)
    async with collect_events(settings) as events, running_worker(settings) as broker:
        if recorder is None:
            await kick_recorder(broker, job)
            row = await stored(engine, job.run_key)
        else:
            async with fake_recorder(settings.nats_url, settings.nats_subject, recorder):
                await kick_recorder(broker, job)
                row = await stored(engine, job.run_key)

        async def announced() -> bool:
            return any(e["type"] == "recorder.command" for e in events)

        await wait_for(announced, what="recorder.command event")
    assert row.error_kind == kind and row.error is not None and says in row.error
    assert row.msg_status is None and row.app_status is None and row.reply_payload is None
    assert events[-1]["payload"]["error_kind"] == kind


async def test_a_job_with_an_invalid_payload_is_stored_as_invalid_command(
    settings: Settings, engine: AsyncEngine
) -> None:
    job = RecorderJob(
        task_id="cam6",
        cmd="start",
        payload={"vid_byterate": "fast"},
        run_key="recorder:test:bad-payload",
    )
    async with running_worker(settings) as broker:
        await kick_recorder(broker, job)
        row = await stored(engine, job.run_key)
    assert row.error_kind == "invalid_command"
    assert row.error is not None and "vid_byterate" in row.error
    assert row.payload == {"vid_byterate": "fast"}


async def test_the_worker_registers_the_recorder_task(settings: Settings) -> None:
    async with running_worker(settings, worker=False) as broker:
        assert "fleetprobe.recorder" in broker.get_all_tasks()
    assert json.loads(one_off_job("a", "status", None).model_dump_json())["source"] == "api"


async def test_each_command_sent_is_counted_by_its_outcome(
    settings: Settings, engine: AsyncEngine
) -> None:
    def count(outcome: str) -> float:
        return samples_of(WORK)[("fleetprobe_recorder_commands_total", (("outcome", outcome),))]

    before = {o: count(o) for o in ("success", "error", "no_responder")}
    unheard = one_off_job("cam9", "status", None)
    started, refused = one_off_job("cam7", "start", None), one_off_job("cam8", "stop", None)
    async with running_worker(settings) as broker:
        await kick_recorder(broker, unheard)  # nobody listens yet
        await stored(engine, unheard.run_key)
        async with running_simulator(settings):
            for job in (started, refused):
                await kick_recorder(broker, job)
                await stored(engine, job.run_key)
    assert {o: count(o) - n for o, n in before.items()} == {
        "success": 1,
        "error": 1,
        "no_responder": 1,
    }
