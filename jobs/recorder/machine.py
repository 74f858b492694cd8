"""The reference recorder's behaviour, pure: a function of state, command and ``now``.

Per task: ``stopped -> started -> stopped``.  A ``start`` while started and a ``stop``
while stopped are refused with ``msg_status: "error"`` and a ``reason`` (the state does
not change).  Replies are shaped as the real recorder shapes them::

    >>> now = datetime(2025, 10, 15, 8, 55, tzinfo=UTC)
    >>> t = step(TaskState(), Command(task_id="t", cmd="start"), now)
    >>> p = wire_reply(t.response)["payload"]
    >>> p["file_path"], p["at_started"], p["at_stopped"]
    ('/mnt/rec001.wav', '2025-10-15T08:55:00Z', '')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from jobs.recorder.wire import (
    Command,
    MsgStatus,
    Response,
    ResponsePayload,
    StartPayload,
    StopPayload,
    describe,
)

DEFAULT_ROOT = "/mnt"


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task's recorder: its status and current (or last) recording."""

    app_status: Literal["started", "stopped"] = "stopped"
    recordings: int = 0  # recordings started so far; numbers the next file
    segment_time: float | None = None
    file_path: str | None = None
    at_started: datetime | None = None
    at_stopped: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    state: TaskState
    response: Response


@dataclass(frozen=True, slots=True)
class Handled:
    """A raw message handled: the task's new state (``None``: nothing to keep) and the
    reply as sent on the wire."""

    task_id: str | None
    state: TaskState | None
    reply: dict[str, Any]


def file_path_for(n: int, root: str = DEFAULT_ROOT) -> str:
    return f"{root.rstrip('/')}/rec{n:03d}.wav"


def step(state: TaskState, command: Command, now: datetime, root: str = DEFAULT_ROOT) -> Transition:
    """Apply ``command`` to ``state`` at ``now``."""
    if command.cmd == "start":
        if state.app_status == "started":
            return _refuse(state, command, f"already recording to {state.file_path}")
        params = command.payload if isinstance(command.payload, StartPayload) else StartPayload()
        n = state.recordings + 1
        state = TaskState(
            app_status="started",
            recordings=n,
            segment_time=params.segment_time,
            file_path=file_path_for(n, root),
            at_started=now,
            at_stopped=None,
        )
        return Transition(state, _reply(state, command, "success"))
    if command.cmd == "stop":
        if state.app_status == "stopped":
            return _refuse(state, command, "not recording")
        state = replace(state, app_status="stopped", at_stopped=now)
        echoed = command.payload.segment_time if isinstance(command.payload, StopPayload) else None
        return Transition(state, _reply(state, command, "success", segment_time=echoed))
    return Transition(state, _reply(state, command, "success"))


def _refuse(state: TaskState, command: Command, reason: str) -> Transition:
    return Transition(state, _reply(state, command, "error", reason=reason))


def _reply(
    state: TaskState,
    command: Command,
    msg_status: MsgStatus,
    *,
    reason: str | None = None,
    segment_time: float | None = None,
) -> Response:
    return Response(
        task_id=command.task_id,
        msg_status=msg_status,
        app_status=state.app_status,
        payload=ResponsePayload(
            segment_time=segment_time if segment_time is not None else state.segment_time,
            file_path=state.file_path,
            at_started=state.at_started,
            at_stopped=state.at_stopped,
        ),
        reason=reason,
    )


def wire_reply(response: Response) -> dict[str, Any]:
    """The reply as the real recorder sends it: ``at_stopped`` is ``""`` while recording."""
    data = response.to_wire()
    if response.app_status == "started" and data["payload"]["at_stopped"] is None:
        data["payload"]["at_stopped"] = ""
    return data


def rejection(task_id: str, reason: str) -> dict[str, Any]:
    """The reply to a message that is not a valid command."""
    return Response(
        task_id=task_id, msg_status="error", app_status="error", reason=reason
    ).to_wire()


def handle_message(
    states: Mapping[str, TaskState], data: bytes, now: datetime, root: str = DEFAULT_ROOT
) -> Handled:
    """Parse ``data`` as a command, step its task's state and build the reply."""
    try:
        command = Command.model_validate_json(data)
    except ValidationError as exc:
        task_id = _task_id_of(data)
        return Handled(task_id, None, rejection(task_id or "", f"invalid command: {describe(exc)}"))
    state = states.get(command.task_id, TaskState())
    transition = step(state, command, now.astimezone(UTC), root)
    return Handled(command.task_id, transition.state, wire_reply(transition.response))


def _task_id_of(data: bytes) -> str | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    task_id = body.get("task_id") if isinstance(body, dict) else None
    return task_id if isinstance(task_id, str) else None
