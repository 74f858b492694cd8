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
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core.natsconn import subscribe_ready
from storage.types import isoformat_z

log = logging.getLogger(__name__)

ORIGIN_HEADER = "Fleetprobe-Origin"
# The event type, repeated as a header so that listeners interested in a few types (the
# schedulers want device.* among a stream of check.created) skip the rest undecoded.
TYPE_HEADER = "Fleetprobe-Event"

# Every event type fleetprobe sends, with what it says (the registry: the WebSocket
# ``?types=`` filter refuses any other name, and the OpenAPI description lists these).
# A new type is declared with :func:`event_type` next to these.
EVENT_TYPES: dict[str, str] = {}


def event_type(name: str, description: str) -> str:
    """Register an event type (once) and return its name: ``X = event_type("x.y", "...")``."""
    if name in EVENT_TYPES:
        raise ValueError(f"event type {name!r} is registered twice")
    EVENT_TYPES[name] = description
    return name


DEVICE_CREATED = event_type("device.created", "a device was created (payload: the device)")
DEVICE_UPDATED = event_type("device.updated", "a device was changed (payload: the device)")
DEVICE_DELETED = event_type("device.deleted", "a device was deleted (payload: the device)")
CHECK_CREATED = event_type(
    "check.created", "a check result was stored (device_id, status_up, latency_ms, ...)"
)
CYCLE_FINISHED = event_type(
    "monitor.cycle.finished", "a monitoring cycle finished (devices_checked, ...)"
)
RECORDER_COMMAND = event_type(
    "recorder.command", "a recorder command's result was stored (the CommandResult)"
)
SCHEDULE_CREATED = event_type("recorder.schedule.created", "a recorder schedule was created")
SCHEDULE_UPDATED = event_type("recorder.schedule.updated", "a recorder schedule was changed")
SCHEDULE_DELETED = event_type("recorder.schedule.deleted", "a recorder schedule was deleted")
TICK = event_type("tick", "every TICK_SECONDS (payload: at)")
NATS_INBOUND = event_type(
    "nats.inbound", "a message published on the events subject from outside fleetprobe"
)
DEVICE_STATE_CHANGED = event_type(
    "device.state_changed",
    "a device's state changed (device_id, from, to, since, cause, run_key): one per stored "
    "state_changes row",
)
# A device with retry_interval_seconds starts (or stops) being probed at it; the
# schedulers re-read it, like a device.updated.
DEVICE_RETRYING = event_type(
    "device.retrying", "a failing device is probed at its retry interval (id, device_id, retrying)"
)
DEVICE_EVENTS = frozenset({DEVICE_CREATED, DEVICE_UPDATED, DEVICE_DELETED})
# What makes a scheduler re-read one device.
SCHEDULE_DEVICE_EVENTS = DEVICE_EVENTS | {DEVICE_RETRYING}
SCHEDULE_EVENTS = frozenset({SCHEDULE_CREATED, SCHEDULE_UPDATED, SCHEDULE_DELETED})
# Alerts: {notification_id, device_id, channel_id, state_change_id, attempt, status,
# response_code, error}; maintenance: {maintenance_id, device_ids} (None: every device).
NOTIFICATION_SENT = event_type(
    "notification.sent", "an alert reached its channel (notification_id, device_id, ...)"
)
NOTIFICATION_FAILED = event_type(
    "notification.failed", "an alert's last try failed (notification_id, error, ...)"
)
MAINTENANCE_STARTED = event_type(
    "maintenance.started", "a maintenance window opened (maintenance_id, device_ids)"
)
MAINTENANCE_ENDED = event_type(
    "maintenance.ended", "a maintenance window closed (maintenance_id, device_ids)"
)


def json_default(value: object) -> Any:
    """``json.dumps``'s ``default=`` for events: a datetime as ISO 8601 UTC with ``Z``
    (the REST API's and the seeds' format), anything else as its ``str``."""
    if isinstance(value, datetime):
        return isoformat_z(value)
    return str(value)


def encode_event(type_: str, payload: Any) -> bytes:
    return json.dumps(
        {"type": type_, "payload": payload}, default=json_default, separators=(",", ":")
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
