"""Events on core NATS ``items.updates``: ``{"type": ..., "payload": {...}}``.

fleetprobe marks what it publishes with the ``Fleetprobe-Origin`` header, so a message
from outside (``nats pub items.updates ...``) is told apart by a header, not by guessing
from its body, and relayed to WebSocket clients as ``nats.inbound``.

The subject is the seed's and is shared by every installation on a NATS server
(``FLEETPROBE_INSTANCE`` prefixes the job queue, not this subject), so each event also
carries its installation's id (``Fleetprobe-Installation``, the id in its database,
storage.installation), and the event feed of a process drops the events of another
installation (:func:`provenance`): they are neither its own nor outside messages.  An
event with the origin header and no installation header comes from a fleetprobe before
installation ids; it is taken as this installation's, so that a rolling upgrade (old
workers beside a new web process) keeps its live feed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core.natsconn import subscribe_ready
from storage.types import isoformat_z

log = logging.getLogger(__name__)

ORIGIN_HEADER = "Fleetprobe-Origin"
# The installation that published the event (storage.installation): two installations on
# one NATS server share the events subject, each keeps only its own events.
INSTALLATION_HEADER = "Fleetprobe-Installation"
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


class Provenance(StrEnum):
    """Where a message on the events subject comes from, as one installation sees it."""

    OURS = "ours"  # published by this installation
    LEGACY = "legacy"  # by a fleetprobe before installation ids: taken as ours
    FOREIGN = "foreign"  # by another installation on the same NATS server: dropped
    OUTSIDE = "outside"  # not by fleetprobe: relayed as nats.inbound


def provenance(headers: Mapping[str, str] | None, ours: str) -> Provenance:
    """Whose message this is, from its headers alone (pure).

    >>> provenance({ORIGIN_HEADER: "w", INSTALLATION_HEADER: "a1"}, "a1")
    <Provenance.OURS: 'ours'>
    >>> provenance({ORIGIN_HEADER: "w", INSTALLATION_HEADER: "b2"}, "a1")
    <Provenance.FOREIGN: 'foreign'>
    >>> provenance({ORIGIN_HEADER: "w"}, "a1")
    <Provenance.LEGACY: 'legacy'>
    >>> provenance(None, "a1")
    <Provenance.OUTSIDE: 'outside'>
    """
    if not headers or not headers.get(ORIGIN_HEADER):
        return Provenance.OUTSIDE
    installation = headers.get(INSTALLATION_HEADER)
    if not installation:
        return Provenance.LEGACY
    return Provenance.OURS if installation == ours else Provenance.FOREIGN


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
    """Publishes events on the events subject over an existing NATS connection, marked as
    fleetprobe's (``origin``: the process, for the logs of whoever reads them) and as
    ``installation``'s (the id in its database: other installations drop them)."""

    def __init__(self, nc: Client, subject: str, origin: str, installation: str) -> None:
        if not installation:
            raise ValueError("an event publisher needs its installation id")
        self._nc = nc
        self._subject = subject
        self._headers = {ORIGIN_HEADER: origin, INSTALLATION_HEADER: installation}

    @property
    def installation(self) -> str:
        return self._headers[INSTALLATION_HEADER]

    async def publish(self, type_: str, payload: Any) -> None:
        """Fire and forget; an event lost while NATS is down is logged, never raised."""
        try:
            await self._nc.publish(
                self._subject,
                encode_event(type_, payload),
                headers={**self._headers, TYPE_HEADER: type_},
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

    The feed is one installation's (``installation``): the events another installation
    publishes on the shared subject are dropped here, before any listener (counted in
    :attr:`foreign`, each said in a DEBUG line); outside messages still reach every
    listener, and events without an installation (an older fleetprobe) are taken as ours
    (counted in :attr:`legacy`, said once).
    """

    def __init__(self, nc: Client, subject: str, installation: str) -> None:
        if not installation:
            raise ValueError("an event feed needs its installation id")
        self._nc = nc
        self._subject = subject
        self.installation = installation
        self._listeners: dict[int, tuple[frozenset[str] | None, Listener]] = {}
        self._ids = itertools.count()
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        # Events of another installation dropped, events of an older fleetprobe kept.
        self.foreign = 0
        self.legacy = 0

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def listen(
        self, listener: Listener, types: frozenset[str] | None = None
    ) -> Callable[[], Awaitable[None]]:
        """Call ``listener`` with every message of this installation or from outside, or
        only those of ``types`` (by the type header; messages without it, from outside,
        reach every listener).  Live at the server when this returns; the returned
        coroutine function removes it."""
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

    def _admits(self, msg: Msg) -> bool:
        """Is this message for this installation's listeners?  Counts what it drops."""
        found = provenance(msg.headers, self.installation)
        if found is Provenance.FOREIGN:
            self.foreign += 1
            headers = msg.headers or {}
            log.debug(
                "event of another installation dropped subject=%s type=%s installation=%s "
                "origin=%s ours=%s dropped=%d",
                msg.subject,
                headers.get(TYPE_HEADER),
                headers.get(INSTALLATION_HEADER),
                headers.get(ORIGIN_HEADER),
                self.installation,
                self.foreign,
            )
            return False
        if found is Provenance.LEGACY:
            self.legacy += 1
            if self.legacy == 1:
                log.info(
                    "event without an installation id taken as this installation's "
                    "(a fleetprobe before installation ids) subject=%s origin=%s",
                    msg.subject,
                    (msg.headers or {}).get(ORIGIN_HEADER),
                )
        return True

    async def _dispatch(self, msg: Msg) -> None:
        if not self._admits(msg):
            return
        kind = msg.headers.get(TYPE_HEADER) if msg.headers else None
        for types, listener in list(self._listeners.values()):
            if types is not None and kind is not None and kind not in types:
                continue  # one of ours, of a type this listener does not follow
            try:
                listener(msg)
            except Exception:
                log.exception("event listener failed subject=%s", self._subject)


_feeds: weakref.WeakKeyDictionary[Client, dict[tuple[str, str], EventFeed]] = (
    weakref.WeakKeyDictionary()
)


def event_feed(nc: Client, subject: str, installation: str) -> EventFeed:
    """The feed of ``subject`` on connection ``nc`` as installation ``installation`` sees
    it, shared by everything using the three (a process has one installation)."""
    by_key = _feeds.setdefault(nc, {})
    feed = by_key.get((subject, installation))
    if feed is None:
        feed = by_key[(subject, installation)] = EventFeed(nc, subject, installation)
    return feed
