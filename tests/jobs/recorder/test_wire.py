"""The recorder's wire format, both ways: DESIGN's examples parse and round-trip, and the
real recorder's quirks are accepted."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

import jobs.recorder.machine
import jobs.recorder.wire
from jobs.recorder.wire import (
    Command,
    Response,
    StartPayload,
    StopPayload,
    format_utc,
    payload_for,
)

START = """{"task_id": "task01", "cmd": "start",
 "payload": {"segment_time": 300.0, "snd_source": "pulsesrc01",
             "snd_byterate": 96, "vid_stream": "main", "vid_byterate": 2000}}"""
STOP = """{"task_id": "task01", "cmd": "stop",   "payload": {"segment_time": 300.0}}"""
STATUS = """{"task_id": "task01", "cmd": "status", "payload": null}"""
REPLY = """{"task_id": "task01", "msg_status": "success", "app_status": "started",
 "payload": {"segment_time": 300.0, "file_path": "/mnt/rec001.wav",
             "at_started": "2025-10-15T08:55:00Z",
             "at_stopped": "2025-10-15T09:00:00Z"}}"""


@pytest.mark.parametrize("text", [START, STOP, STATUS], ids=["start", "stop", "status"])
def test_design_command_examples_round_trip_exactly(text: str) -> None:
    command = Command.model_validate_json(text)
    assert command.to_wire() == json.loads(text)
    assert json.loads(command.to_bytes()) == json.loads(text)


def test_design_reply_example_round_trips_exactly() -> None:
    response = Response.model_validate_json(REPLY)
    assert response.payload.at_started == datetime(2025, 10, 15, 8, 55, tzinfo=UTC)
    assert response.payload.at_started.tzinfo is UTC
    assert response.to_wire() == json.loads(REPLY)
    assert Response.model_validate_json(response.to_bytes()) == response


def test_start_payload_defaults_are_the_recorders() -> None:
    assert StartPayload().model_dump() == {
        "segment_time": 300.0,
        "snd_source": "pulsesrc01",
        "snd_byterate": 96,
        "vid_stream": "main",
        "vid_byterate": 2000,
    }
    assert Command(task_id="task01", cmd="start").to_wire() == json.loads(START)


def test_start_with_custom_parameters_keeps_the_rest_default() -> None:
    command = Command(
        task_id="t", cmd="start", payload=StartPayload(vid_byterate=2500, segment_time=60)
    )
    assert command.to_wire()["payload"] == {
        "segment_time": 60.0,
        "snd_source": "pulsesrc01",
        "snd_byterate": 96,
        "vid_stream": "main",
        "vid_byterate": 2500,
    }


def test_stop_is_sent_with_segment_time_only() -> None:
    assert Command(task_id="task01", cmd="stop", payload=StopPayload()).to_wire() == json.loads(
        STOP
    )


def test_status_without_a_payload_key_is_accepted() -> None:
    command = Command.model_validate_json('{"task_id": "task01", "cmd": "status"}')
    assert command.payload is None
    assert command.to_wire() == json.loads(STATUS)


def test_status_with_a_payload_object_ignores_it() -> None:
    command = Command.model_validate({"task_id": "t", "cmd": "status", "payload": {"x": 1}})
    assert command.payload is None


def test_stop_carrying_the_start_fields_as_null_is_accepted() -> None:
    text = json.dumps(
        {
            "task_id": "t",
            "cmd": "stop",
            "payload": {
                "segment_time": 120.0,
                "snd_source": None,
                "snd_byterate": None,
                "vid_stream": None,
                "vid_byterate": None,
            },
        }
    )
    command = Command.model_validate_json(text)
    assert isinstance(command.payload, StopPayload)
    assert command.to_wire()["payload"] == {"segment_time": 120.0}


def test_start_without_a_payload_gets_the_defaults() -> None:
    for text in (
        '{"task_id": "t", "cmd": "start"}',
        '{"task_id": "t", "cmd": "start", "payload": null}',
    ):
        assert Command.model_validate_json(text).payload == StartPayload()


def test_a_stop_payload_is_never_mistaken_for_a_start_payload() -> None:
    command = Command.model_validate(
        {"task_id": "t", "cmd": "stop", "payload": {"segment_time": 1.0}}
    )
    assert type(command.payload) is StopPayload


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"task_id": "t", "cmd": "pause"}, "cmd"),
        ({"task_id": "", "cmd": "start"}, "task_id"),
        ({"cmd": "start"}, "task_id"),
        ({"task_id": "t", "cmd": "start", "payload": {"vid_byterate": -1}}, "vid_byterate"),
        ({"task_id": "t", "cmd": "start", "payload": {"vid_bitrate": 1}}, "vid_bitrate"),
        ({"task_id": "t", "cmd": "stop", "payload": {"segment_time": "soon"}}, "segment_time"),
    ],
)
def test_invalid_commands_say_which_field_is_wrong(data: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        Command.model_validate(data)
    assert says in str(info.value)


def test_payload_for_names_the_command_and_the_field() -> None:
    with pytest.raises(ValueError, match=r"invalid start payload: snd_byterate: "):
        payload_for("start", {"snd_byterate": 0})


def test_reply_fields_may_each_be_null() -> None:
    response = Response.model_validate_json(
        '{"task_id": "t", "msg_status": "error", "app_status": "error", "payload": '
        '{"segment_time": null, "file_path": null, "at_started": null, "at_stopped": null}}'
    )
    assert response.payload.model_dump() == dict.fromkeys(
        ["segment_time", "file_path", "at_started", "at_stopped"]
    )


def test_at_stopped_empty_while_recording_reads_as_none() -> None:
    response = Response.model_validate_json(
        '{"task_id": "t", "msg_status": "success", "app_status": "started", "payload": '
        '{"segment_time": 300.0, "file_path": "/mnt/rec001.wav", '
        '"at_started": "2025-10-15T08:55:00Z", "at_stopped": ""}}'
    )
    assert response.payload.at_stopped is None
    assert response.payload.file_path == "/mnt/rec001.wav"


@pytest.mark.parametrize("payload", ['"payload": null,', ""], ids=["null", "missing"])
def test_a_reply_with_no_payload_has_an_empty_one(payload: str) -> None:
    response = Response.model_validate_json(
        f'{{{payload} "task_id": "t", "msg_status": "success", "app_status": "stopped"}}'
    )
    assert response.payload.file_path is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-15T08:55:00Z", datetime(2025, 10, 15, 8, 55, tzinfo=UTC)),
        ("2025-10-15T10:55:00+02:00", datetime(2025, 10, 15, 8, 55, tzinfo=UTC)),
        ("2025-10-15T08:55:00", datetime(2025, 10, 15, 8, 55, tzinfo=UTC)),
        ("2025-10-15T08:55:00.250Z", datetime(2025, 10, 15, 8, 55, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_reply_times_are_read_as_utc(text: str, expected: datetime) -> None:
    response = Response.model_validate(
        {
            "task_id": "t",
            "msg_status": "success",
            "app_status": "stopped",
            "payload": {"at_started": text},
        }
    )
    assert response.payload.at_started == expected
    assert response.payload.at_started is not None
    assert response.payload.at_started.tzinfo is UTC


def test_times_are_written_in_utc_with_a_z() -> None:
    assert format_utc(datetime(2025, 10, 15, 8, 55, tzinfo=UTC)) == "2025-10-15T08:55:00Z"
    assert format_utc(datetime(2025, 10, 15, 8, 55, 0, 5, tzinfo=UTC)) == (
        "2025-10-15T08:55:00.000005Z"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"task_id": "t", "msg_status": "done", "app_status": "started"},
        {"task_id": "t", "msg_status": "success", "app_status": "paused"},
        {"msg_status": "success", "app_status": "started"},
        {
            "task_id": "t",
            "msg_status": "success",
            "app_status": "started",
            "payload": {"at_started": "yesterday"},
        },
        {"task_id": "t", "msg_status": "success", "app_status": "started", "payload": [1]},
    ],
)
def test_replies_with_wrong_fields_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Response.model_validate(body)


def test_unknown_reply_fields_from_a_newer_recorder_are_ignored() -> None:
    response = Response.model_validate(
        {
            "task_id": "t",
            "msg_status": "success",
            "app_status": "stopped",
            "version": 2,
            "payload": {"file_path": "/mnt/rec002.wav", "codec": "opus"},
        }
    )
    assert response.payload.file_path == "/mnt/rec002.wav"


@pytest.mark.parametrize("module", [jobs.recorder.wire, jobs.recorder.machine])
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
