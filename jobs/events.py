"""Events on core NATS ``items.updates``: ``{"type": ..., "payload": {...}}``.

fleetprobe marks what it publishes with the ``Fleetprobe-Origin`` header, so a message
from outside (``nats pub items.updates ...``) is told apart by a header, not by guessing
from its body, and relayed to WebSocket clients as ``nats.inbound``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core.natsconn import subscribe_ready

log = logging.getLogger(__name__)

ORIGIN_HEADER = "Fleetprobe-Origin"
# The event type, repeated as a header so that listeners interested in a few types (the
# schedulers want device.* among a stream of check.created) skip the rest undecoded.
TYPE_HEADER = "Fleetprobe-Event"

DEVICE_CREATED = "device.created"
DEVICE_UPDATED = "device.updated"
DEVICE_DELETED = "device.deleted"
CHECK_CREATED = "check.created"
CYCLE_FINISHED = "monitor.cycle.finished"
RECORDER_COMMAND = "recorder.command"
TICK = "tick"
NATS_INBOUND = "nats.inbound"
DEVICE_EVENTS = frozenset({DEVICE_CREATED, DEVICE_UPDATED, DEVICE_DELETED})
SCHEDULE_CREATED = "recorder.schedule.created"
SCHEDULE_UPDATED = "recorder.schedule.updated"
SCHEDULE_DELETED = "recorder.schedule.deleted"
SCHEDULE_EVENTS = frozenset({SCHEDULE_CREATED, SCHEDULE_UPDATED, SCHEDULE_DELETED})
# Alerts: {notification_id, device_id, channel_id, state_change_id, attempt, status,
# response_code, error}; maintenance: {maintenance_id, device_ids} (None: every device).
NOTIFICATION_SENT = "notification.sent"
NOTIFICATION_FAILED = "notification.failed"
MAINTENANCE_STARTED = "maintenance.started"
MAINTENANCE_ENDED = "maintenance.ended"


def encode_event(type_: str, payload: Any) -> bytes:
    return json.dumps(
        {"type": type_, "payload": payload}, default=str, separators=(",", ":")
    ).encode()


def own_event_text(data: bytes, headers: dict[str, str] | None) -> tuple[str, str] | None:
    """``(type, JSON text)`` of an event fleetprobe published (:func:`encode_event`), as
    clients see it, without decoding it; None for anything else (pure)."""
    if not headers or not headers.get(ORIGIN_HEADER) or not (kind := headers.get(TYPE_HEADER)):
        return None
    if not data.startswith(b'{"type":' + json.dumps(kind).encode() + b',"payload":'):
        return None
    return kind, data.decode()


def decode_message(data: bytes, headers: dict[str, str] | None) -> dict[str, Any]:
    """An event as WebSocket clients see it.

    Ours pass through; anything else becomes ``nats.inbound`` with the parsed JSON body,
    or the text when the body is not JSON (never an exception).
    """
    ours = bool(headers and headers.get(ORIGIN_HEADER))
    if ours:
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            return event
    try:
        body: Any = json.loads(data)
    except ValueError:
        body = data.decode("utf-8", errors="replace")
    return {"type": NATS_INBOUND, "payload": body}


class EventPublisher:
    """Publishes events on the events subject over an existing NATS connection."""

    def __init__(self, nc: Client, subject: str, origin: str) -> None:
        self._nc = nc
        self._subject = subject
        self._origin = origin

    async def publish(self, type_: str, payload: Any) -> None:
        """Fire and forget; an event lost while NATS is down is logged, never raised."""
        try:
            await self._nc.publish(
                self._subject,
                encode_event(type_, payload),
                headers={ORIGIN_HEADER: self._origin, TYPE_HEADER: type_},
            )
        except Exception as exc:
            log.warning("event not published type=%s error=%s", type_, exc)


Listener = Callable[[Msg], None]


class EventFeed:
    """One subscription to an events subject per NATS connection, fanned out in-process.

    The server sends a connection one copy of a message per matching subscription: the
    two schedulers, the WebSocket hub and every waiting request subscribing on their own
    meant as many copies of every ``check.created`` to parse and dispatch.  Listeners run
    in arrival order inside the connection's read path, so they must not block (queue or
    spawn their work).  Get the feed with :func:`event_feed`.
    """

    def __init__(self, nc: Client, subject: str) -> None:
        self._nc = nc
        self._subject = subject
        self._listeners: dict[int, tuple[frozenset[str] | None, Listener]] = {}
        self._ids = itertools.count()
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def listen(
        self, listener: Listener, types: frozenset[str] | None = None
    ) -> Callable[[], Awaitable[None]]:
        """Call ``listener`` with every message, or only those of ``types`` (by the type
        header; messages without it, from outside, reach every listener).  Live at the
        server when this returns; the returned coroutine function removes it."""
        key = next(self._ids)
        async with self._lock:
            self._listeners[key] = (types, listener)
            if self._sub is None:
                self._sub = await subscribe_ready(self._nc, self._subject, cb=self._dispatch)

        async def remove() -> None:
            async with self._lock:
                self._listeners.pop(key, None)
                if self._listeners or self._sub is None:
                    return
                sub, self._sub = self._sub, None
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # the connection may already be closing
                    log.debug("events unsubscribe failed subject=%s error=%s", self._subject, exc)

        return remove

    async def _dispatch(self, msg: Msg) -> None:
        kind = msg.headers.get(TYPE_HEADER) if msg.headers else None
        for types, listener in list(self._listeners.values()):
            if types is not None and kind is not None and kind not in types:
                continue  # one of ours, of a type this listener does not follow
            try:
                listener(msg)
            except Exception:
                log.exception("event listener failed subject=%s", self._subject)


_feeds: weakref.WeakKeyDictionary[Client, dict[str, EventFeed]] = weakref.WeakKeyDictionary()


def event_feed(nc: Client, subject: str) -> EventFeed:
    """The feed of ``subject`` on connection ``nc``, shared by everything using both."""
    by_subject = _feeds.setdefault(nc, {})
    feed = by_subject.get(subject)
    if feed is None:
        feed = by_subject[subject] = EventFeed(nc, subject)
    return feed
