"""Recorder control over NATS request/reply: the client library.

``from jobs.recorder import RecorderClient`` keeps working, but the names below are
loaded on first use (PEP 562): importing a module of this package (the enqueuing side's
:mod:`jobs.recorder.job` and :mod:`jobs.recorder.kick`, say) runs this file first, and
it must not load the client with it (docs/architecture.md, the import rule).

The taskiq task (:mod:`jobs.recorder.task`), the scheduler
(:mod:`jobs.recorder.scheduler`) and the reference recorder
(:mod:`jobs.recorder.simulator`) are imported from their own modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each public name -> the module that defines it.
_HOMES = {
    "ClientState": "client",
    "RecorderClient": "client",
    "Reply": "client",
    "parse_reply": "client",
    "InvalidReplyError": "errors",
    "NoResponderError": "errors",
    "RecorderConnectionError": "errors",
    "RecorderError": "errors",
    "RecorderTimeoutError": "errors",
    "RecorderService": "service",
    "Command": "wire",
    "CommandName": "wire",
    "Response": "wire",
    "ResponsePayload": "wire",
    "StartPayload": "wire",
    "StopPayload": "wire",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found directly from now on
    return value
