"""The ``recorder://<task_id>`` check: the seed's ``status`` command, its reply as facts.

Sent through the worker's :class:`RecorderClient` (passed in: its one NATS connection is
shared by every check and command of the process) on its subject (``NATS_SUBJECT``).
``[MSG_STATUS]`` / ``[APP_STATUS]`` come from the reply, ``[BODY]`` is the reply as JSON
text, so ``[BODY].payload.file_path`` reads the current recording's file.  A reply with
``msg_status: error`` is an answer (``[CONNECTED]`` true); no recorder listening, no
reply in time, NATS unreachable or a reply that is not one are data, with the error
kinds of :mod:`jobs.recorder.errors` (``no_responder``, ``timeout``, ``connection``,
``invalid_reply``), or ``invalid_command`` for a task id no command can carry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

from pydantic import ValidationError

from jobs.probe.facts import Facts
from jobs.probe.kinds.address import RecorderTarget
from jobs.probe.kinds.failure import failed, from_exception, timed_out
from jobs.recorder.client import RecorderClient
from jobs.recorder.errors import RecorderError
from jobs.recorder.wire import Command, describe

# The error kind of a command that cannot be built, here and in jobs.recorder.task (which
# imports it: this module must not pull in the task's storage).
INVALID_COMMAND = "invalid_command"
# The failures in which a reply did arrive (the recorder is there, it answered badly).
_REPLIED = ("invalid_reply",)


async def probe_recorder(
    target: RecorderTarget, *, timeout: float, client: RecorderClient
) -> Facts:
    """Ask the recorder for ``target.task_id``'s status within ``timeout`` seconds.

    The client's own request timeout (``NATS_TIMEOUT``) applies too; the shorter wins.
    """
    started = time.perf_counter()
    try:
        command = Command(task_id=target.task_id, cmd="status")
    except ValidationError as exc:  # a target built without the parser, longer than allowed
        return failed(INVALID_COMMAND, describe(exc), started)
    try:
        async with asyncio.timeout(timeout):
            reply = await client.send(command)
    except TimeoutError:
        return timed_out(timeout, started, f"no recorder reply for task {target.task_id}")
    except RecorderError as exc:
        facts = failed(exc.kind, exc.message, started)
        return dataclasses.replace(facts, connected=exc.kind in _REPLIED)
    except Exception as exc:  # failures are data (jobs/probe/kinds/failure.py)
        return from_exception(exc, started)
    response = reply.response
    return Facts(
        connected=True,
        response_time_ms=reply.latency_ms,
        msg_status=response.msg_status,
        app_status=response.app_status,
        body=json.dumps(response.to_wire(), separators=(",", ":")),
    )
