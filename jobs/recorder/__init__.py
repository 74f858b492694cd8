"""Recorder control over NATS request/reply: the client library.

The taskiq task (:mod:`jobs.recorder.task`), the scheduler
(:mod:`jobs.recorder.scheduler`) and the reference recorder
(:mod:`jobs.recorder.simulator`) are imported from their own modules.
"""

from jobs.recorder.client import ClientState, RecorderClient, Reply, parse_reply
from jobs.recorder.errors import (
    InvalidReplyError,
    NoResponderError,
    RecorderConnectionError,
    RecorderError,
    RecorderTimeoutError,
)
from jobs.recorder.service import RecorderService
from jobs.recorder.wire import (
    Command,
    CommandName,
    Response,
    ResponsePayload,
    StartPayload,
    StopPayload,
)

__all__ = [
    "ClientState",
    "Command",
    "CommandName",
    "InvalidReplyError",
    "NoResponderError",
    "RecorderClient",
    "RecorderConnectionError",
    "RecorderError",
    "RecorderService",
    "RecorderTimeoutError",
    "Reply",
    "Response",
    "ResponsePayload",
    "StartPayload",
    "StopPayload",
    "parse_reply",
]
