"""The reference recorder's state machine, pure: state, command and ``now`` in, state and
reply out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs.recorder.machine import TaskState, file_path_for, handle_message, step, wire_reply
from jobs.recorder.wire import Command, StartPayload, StopPayload

T0 = datetime(2025, 10, 15, 8, 55, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def cmd(name: str, **payload: object) -> Command:
    return Command.model_validate({"task_id": "task01", "cmd": name, "payload": payload or None})


def test_start_begins_the_first_recording() -> None:
    t = step(TaskState(), cmd("start", segment_time=60), T0)
    assert t.state == TaskState(
        app_status="started",
        recordings=1,
        segment_time=60.0,
        file_path="/mnt/rec001.wav",
        at_started=T0,
        at_stopped=None,
    )
    assert (t.response.msg_status, t.response.app_status) == ("success", "started")
    assert wire_reply(t.response)["payload"] == {
        "segment_time": 60.0,
        "file_path": "/mnt/rec001.wav",
        "at_started": "2025-10-15T08:55:00Z",
        "at_stopped": "",
    }


def test_stop_ends_the_recording_and_echoes_segment_time() -> None:
    started = step(TaskState(), cmd("start", segment_time=60), T0).state
    t = step(
        started, Command(task_id="task01", cmd="stop", payload=StopPayload(segment_time=60)), T1
    )
    assert t.state.app_status == "stopped" and t.state.at_stopped == T1
    assert wire_reply(t.response) == {
        "task_id": "task01",
        "msg_status": "success",
        "app_status": "stopped",
        "payload": {
            "segment_time": 60.0,
            "file_path": "/mnt/rec001.wav",
            "at_started": "2025-10-15T08:55:00Z",
            "at_stopped": "2025-10-15T09:00:00Z",
        },
    }


@pytest.mark.parametrize(
    ("state", "command", "reason"),
    [
        (
            TaskState(
                app_status="started", recordings=1, file_path="/mnt/rec001.wav", at_started=T0
            ),
            "start",
            "already recording to /mnt/rec001.wav",
        ),
        (TaskState(), "stop", "not recording"),
    ],
    ids=["start-while-started", "stop-while-stopped"],
)
def test_refused_commands_answer_error_with_a_reason_and_change_nothing(
    state: TaskState, command: str, reason: str
) -> None:
    t = step(state, cmd(command), T1)
    assert t.state == state
    assert t.response.msg_status == "error"
    assert t.response.app_status == state.app_status
    assert t.response.reason == reason


@pytest.mark.parametrize(
    ("state", "app_status", "at_stopped"),
    [
        (TaskState(), "stopped", None),
        (
            TaskState(
                app_status="started",
                recordings=1,
                segment_time=300.0,
                file_path="/mnt/rec001.wav",
                at_started=T0,
            ),
            "started",
            "",
        ),
        (
            TaskState(
                app_status="stopped",
                recordings=1,
                segment_time=300.0,
                file_path="/mnt/rec001.wav",
                at_started=T0,
                at_stopped=T1,
            ),
            "stopped",
            "2025-10-15T09:00:00Z",
        ),
    ],
    ids=["never-started", "recording", "stopped-after-recording"],
)
def test_status_reports_the_current_state(
    state: TaskState, app_status: str, at_stopped: str | None
) -> None:
    t = step(state, cmd("status"), T1 + timedelta(hours=1))
    assert t.state == state
    reply = wire_reply(t.response)
    assert (reply["msg_status"], reply["app_status"]) == ("success", app_status)
    assert reply["payload"]["at_stopped"] == at_stopped
    assert reply["payload"]["file_path"] == state.file_path


def test_each_recording_gets_the_next_file() -> None:
    state = TaskState()
    paths = []
    for minute in range(3):
        now = T0 + timedelta(minutes=minute)
        state = step(state, cmd("start"), now).state
        paths.append(state.file_path)
        state = step(state, cmd("stop"), now).state
    assert paths == ["/mnt/rec001.wav", "/mnt/rec002.wav", "/mnt/rec003.wav"]
    assert file_path_for(12, "/data/") == "/data/rec012.wav"


def test_handle_message_keeps_tasks_apart() -> None:
    states = {"a": step(TaskState(), cmd("start"), T0).state}
    handled = handle_message(states, b'{"task_id": "b", "cmd": "status"}', T1)
    assert handled.task_id == "b"
    assert handled.reply["app_status"] == "stopped"
    assert states["a"].app_status == "started"


@pytest.mark.parametrize(
    ("data", "task_id"),
    [
        (b"not json", ""),
        (b'{"task_id": "t9", "cmd": "rewind"}', "t9"),
        (b'{"task_id": "t9", "cmd": "start", "payload": {"vid_byterate": "lots"}}', "t9"),
        (b"[1, 2]", ""),
    ],
)
def test_invalid_commands_are_answered_with_an_error_not_dropped(data: bytes, task_id: str) -> None:
    handled = handle_message({}, data, T0)
    assert handled.state is None
    assert handled.reply["task_id"] == task_id
    assert (handled.reply["msg_status"], handled.reply["app_status"]) == ("error", "error")
    assert handled.reply["reason"].startswith("invalid command: ")


def test_start_uses_the_default_parameters_when_none_are_sent() -> None:
    handled = handle_message({}, b'{"task_id": "t", "cmd": "start", "payload": null}', T0)
    assert handled.state is not None
    assert handled.state.segment_time == StartPayload().segment_time
    assert json.loads(json.dumps(handled.reply))["payload"]["at_stopped"] == ""
