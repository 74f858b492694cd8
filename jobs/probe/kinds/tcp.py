"""The ``tcp://host:port`` check: open a connection, time it, close it.

``[CONNECTED]`` is whether the connection was accepted; ``[RESPONSE_TIME]`` the time to
resolve the host and connect.  Refused, unresolvable and silent ports are data
(``error_kind`` ``refused`` / ``dns`` / ``timeout``), never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from jobs.probe.facts import Facts
from jobs.probe.kinds.address import TcpTarget
from jobs.probe.kinds.failure import elapsed_ms, from_exception, timed_out

log = logging.getLogger(__name__)

# How long closing the probe's connection may take: a peer that never answers the FIN
# must not hold the check past its result.
CLOSE_TIMEOUT = 1.0


async def probe_tcp(target: TcpTarget, *, timeout: float) -> Facts:
    """Connect to ``target`` within ``timeout`` seconds; the facts of what happened."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(target.host, target.port)
        connect_ms = elapsed_ms(started)
    except TimeoutError:
        return timed_out(timeout, started, f"no connection to {target.host}:{target.port}")
    except Exception as exc:  # failures are data (module docstring)
        return from_exception(exc, started)
    await close_quietly(writer)
    log.debug("tcp check host=%s port=%d connect_ms=%.1f", target.host, target.port, connect_ms)
    return Facts(connected=True, response_time_ms=connect_ms)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a probe's connection; how the peer takes it is not the check's business."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
