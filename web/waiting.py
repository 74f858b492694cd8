"""Waiting, bounded, for the results of queued tasks: woken by their events, answered from
the table (events are fire and forget; the table is the truth); and giving up when the
HTTP client that would read the answer has left."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar

from nats.aio.msg import Msg
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from jobs.events import event_feed
from storage.db import session_factory
from web.services import Services

log = logging.getLogger(__name__)

# Re-read the table at least this often while waiting, in case an event was lost.
POLL_SECONDS = 0.5

Result = TypeVar("Result")
Reader = Callable[[AsyncSession, list[str]], Awaitable[Mapping[str, Result]]]


def names_a_pending_run(msg: Msg, event_type: str, pending: Collection[str]) -> bool:
    """Is this an ``event_type`` event about one of the ``pending`` run keys?  (The event
    feed already skipped ours of other types undecoded, and another installation's: their
    run keys are not ours, but a wake-up for nothing is a table read.)"""
    try:
        event = json.loads(msg.data)
        return bool(event["type"] == event_type and event["payload"]["run_key"] in pending)
    except (ValueError, KeyError, TypeError):
        return False  # not an event we can read: the table re-read covers it


async def wait_for_stored(
    services: Services,
    event_type: str,
    run_keys: Collection[str],
    read: Reader[Result],
    timeout: float,
) -> dict[str, Result]:
    """The stored results of ``run_keys`` (by run key), once all are stored or ``timeout``
    passed; ``read`` fetches those of a list of keys that are stored."""
    pending = set(run_keys)
    found: dict[str, Result] = {}
    wake = asyncio.Event()

    def on_event(msg: Msg) -> None:
        if names_a_pending_run(msg, event_type, pending):
            wake.set()

    sessions = session_factory(services.engine)
    feed = event_feed(services.nc, services.settings.events_subject, services.installation_id)
    unlisten = await feed.listen(on_event, frozenset({event_type}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while pending:
            wake.clear()  # before reading: an event arriving during the read wakes us
            async with sessions() as session:
                stored = await read(session, sorted(pending))
            found.update(stored)
            pending.difference_update(stored)
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, POLL_SECONDS))
    finally:
        await unlisten()
    return found


async def _client_gone(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Awaitable[Result]) -> Result | None:
    """Await ``work``, or stop (cancel it, answer None) when the HTTP client disconnects:
    nobody would read the answer, and a waiting handler would hold up shutdown."""
    task = asyncio.ensure_future(work)
    gone = asyncio.create_task(_client_gone(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    if task.cancelled():
        log.info("client left while waiting path=%s", request.url.path)
        return None
    return task.result()
