"""``RecorderClient``: commands to the recorder over NATS request/reply.

One NATS connection, opened on first use (or by ``async with``) and reused by every
call, concurrent ones included; closing the client closes it.  A connection handed in
(``connection=nc``) is borrowed: used, never closed.  Each call is logged on one line::

    recorder command task_id=task01 cmd=start outcome=ok msg_status=success
    app_status=started latency_ms=1.8

Failures raise the typed errors of :mod:`jobs.recorder.errors`.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from dataclasses import dataclass
from types import TracebackType

from nats import errors as nats_errors
from nats.aio.client import Client
from pydantic import ValidationError

from core.natsconn import connect
from core.natsurl import redact
from core.settings import Settings
from jobs.recorder.errors import (
    InvalidReplyError,
    NoResponderError,
    RecorderConnectionError,
    RecorderError,
    RecorderTimeoutError,
)
from jobs.recorder.wire import Command, Response, describe

log = logging.getLogger(__name__)

# Real replies are a few hundred bytes; anything this large is not a reply.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024
EXCERPT_BYTES = 200


class ClientState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reply:
    """A valid reply and how long it took (request sent -> reply received)."""

    response: Response
    latency_ms: float


def parse_reply(
    data: bytes, command: Command, max_bytes: int = DEFAULT_MAX_REPLY_BYTES
) -> Response:
    """Accept ``data`` as the reply to ``command`` or raise :class:`InvalidReplyError`."""

    def invalid(why: str) -> InvalidReplyError:
        return InvalidReplyError(
            why, task_id=command.task_id, cmd=command.cmd, excerpt=data[:EXCERPT_BYTES]
        )

    if len(data) > max_bytes:
        raise invalid(f"reply of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"reply is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid(f"reply is not a JSON object but {type(body).__name__}")
    try:
        response = Response.model_validate(body)
    except ValidationError as exc:
        raise invalid(f"reply has wrong fields: {describe(exc)}") from None
    if response.task_id != command.task_id:
        raise invalid(f"reply is for task_id={response.task_id!r}, not {command.task_id!r}")
    return response


class RecorderClient:
    """Sends :class:`Command` objects to ``subject`` and returns validated replies."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str = "fleetprobe-recorder",
        connection: Client | None = None,
        subject: str | None = None,
        timeout: float | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        connect_timeout: float = 5.0,
    ) -> None:
        self.settings = settings
        self.name = name
        self.subject = subject or settings.nats_subject
        self.timeout = timeout if timeout is not None else settings.nats_timeout
        self.max_reply_bytes = max_reply_bytes
        self.connect_timeout = connect_timeout
        self._nc = connection
        self._owned = connection is None
        self._state = ClientState.UNOPENED if connection is None else ClientState.OPEN
        self._open_lock = asyncio.Lock()

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def connection(self) -> Client | None:
        """The NATS connection every call goes through (``None`` until opened)."""
        return self._nc

    async def open(self) -> Client:
        """Connect once; later and concurrent calls get the same connection."""
        if self._state is ClientState.CLOSED:
            raise RuntimeError("the recorder client is closed")
        if self._nc is not None:
            return self._nc
        async with self._open_lock:
            if self._nc is None:
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        self._nc = await connect(self.settings, self.name)
                except (TimeoutError, OSError, nats_errors.Error) as exc:
                    raise RecorderConnectionError(
                        f"cannot connect to NATS at {redact(self.settings.nats_url)}: "
                        f"{type(exc).__name__} {exc}".strip()
                    ) from exc
                self._state = ClientState.OPEN
                log.info(
                    "recorder client connected name=%s subject=%s timeout_s=%g",
                    self.name,
                    self.subject,
                    self.timeout,
                )
            return self._nc

    async def close(self) -> None:
        """Close an owned connection (pending replies are drained); idempotent."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        nc, self._nc = self._nc, None
        if nc is not None and self._owned and not nc.is_closed:
            try:
                await nc.drain()
            except Exception as exc:  # closing anyway; nothing is waiting on it
                log.debug("recorder client drain failed name=%s error=%r", self.name, exc)
                await nc.close()

    async def __aenter__(self) -> RecorderClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, command: Command) -> Reply:
        """Request/reply once; a valid reply or a :class:`RecorderError`, logged either way."""
        started = time.perf_counter()
        try:
            nc = await self.open()
            data = await self._request(nc, command)
            response = parse_reply(data, command, self.max_reply_bytes)
        except RecorderError as exc:
            exc.task_id, exc.cmd = command.task_id, command.cmd
            exc.latency_ms = _ms_since(started)
            log.warning(
                "recorder command task_id=%s cmd=%s outcome=%s latency_ms=%.1f error=%s",
                command.task_id,
                command.cmd,
                exc.kind,
                exc.latency_ms,
                exc.message,
            )
            raise
        latency_ms = _ms_since(started)
        log.info(
            "recorder command task_id=%s cmd=%s outcome=ok msg_status=%s app_status=%s "
            "latency_ms=%.1f",
            command.task_id,
            command.cmd,
            response.msg_status,
            response.app_status,
            latency_ms,
        )
        return Reply(response=response, latency_ms=latency_ms)

    async def _request(self, nc: Client, command: Command) -> bytes:
        if not nc.is_connected:
            raise RecorderConnectionError("NATS connection is not up (reconnecting or closed)")
        try:
            msg = await nc.request(self.subject, command.to_bytes(), timeout=self.timeout)
        except nats_errors.NoRespondersError:
            raise NoResponderError(
                f"recorder not running: nothing answers on subject {self.subject}"
            ) from None
        except nats_errors.TimeoutError:
            if not nc.is_connected:
                raise RecorderConnectionError(
                    "NATS connection lost while waiting for the reply"
                ) from None
            raise RecorderTimeoutError(
                f"no reply on subject {self.subject} within {self.timeout:g}s"
            ) from None
        except nats_errors.Error as exc:  # closed, draining, reconnecting, buffer full
            raise RecorderConnectionError(f"{type(exc).__name__}: {exc}".strip()) from exc
        return msg.data


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
