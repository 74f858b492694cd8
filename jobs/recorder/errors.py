"""Why a recorder command got no valid reply.

::

    RecorderError                 base; .kind names the failure in stored results
    ├── NoResponderError          retryable: nobody listens on the subject ("recorder not
    │                             running"); NATS says so at once, no timeout is waited
    ├── RecorderTimeoutError      retryable: the recorder is there but did not answer
    │                             within NATS_TIMEOUT (slow, busy, or the reply was lost)
    ├── RecorderConnectionError   retryable: NATS itself is unreachable, closed or
    │                             reconnecting; nothing reached the recorder
    └── InvalidReplyError         permanent: the recorder answered, but not with a valid
                                  reply (not JSON, wrong fields, another task_id, oversized);
                                  sending the same command again gets the same answer

A reply with ``msg_status: "error"`` (a second ``start``, a ``stop`` with nothing
recording) is *not* an exception: it is a valid answer and is returned as such.
"""

from __future__ import annotations

from typing import ClassVar


class RecorderError(Exception):
    """A command that got no valid reply."""

    kind: ClassVar[str] = "recorder"
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, task_id: str = "", cmd: str = "", latency_ms: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id
        self.cmd = cmd
        self.latency_ms = latency_ms


class NoResponderError(RecorderError):
    kind = "no_responder"
    retryable = True


class RecorderTimeoutError(RecorderError):
    kind = "timeout"
    retryable = True


class RecorderConnectionError(RecorderError):
    kind = "connection"
    retryable = True


class InvalidReplyError(RecorderError):
    """The reply could not be accepted; ``excerpt`` holds its first bytes for the logs."""

    kind = "invalid_reply"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        task_id: str = "",
        cmd: str = "",
        latency_ms: float | None = None,
        excerpt: bytes = b"",
    ) -> None:
        super().__init__(message, task_id=task_id, cmd=cmd, latency_ms=latency_ms)
        self.excerpt = excerpt
