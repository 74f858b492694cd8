"""Events from NATS fanned out to the WebSocket clients of ``/ws/items`` (:mod:`web.ws`).

The process's event feed (one NATS subscription) feeds a :class:`Hub`; each client has its
own queue, bounded in bytes (encode/broadcaster style, ``subscribe()`` is an async context
manager so cleanup always runs).  Publishing to a client never waits: a client whose
queue would pass ``WS_CLIENT_BUFFER_BYTES`` is dropped (closed with
:data:`SLOW_CLIENT_CLOSE`) and logged, and the others carry on.

Every event is ``{"type": ..., "payload": ...}``: this installation's events pass through,
anything published on the subject by someone else than fleetprobe arrives as
``nats.inbound``, the events of another installation on the same NATS server never
arrive (the feed drops them: :class:`jobs.events.EventFeed`), and a ``tick`` is sent
every ``TICK_SECONDS``.

Filters (query string): ``?types=check.created,device.updated`` keeps only those types
(names from :data:`jobs.events.EVENT_TYPES`; any other name is refused);
``?device_id=3`` keeps only events about device 3 (``payload.device_id``, or
``payload.id`` for ``device.*``).  Ticks, pongs and echoes are always delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from jobs.events import (
    DEVICE_EVENTS,
    EVENT_TYPES,
    NATS_INBOUND,
    TICK,
    EventFeed,
    decode_message,
    event_feed,
    json_default,
    own_event_text,
)
from storage.types import isoformat_z, utcnow

log = logging.getLogger(__name__)

# Policy violation: the client did not read fast enough (its queue overflowed).
SLOW_CLIENT_CLOSE = 1008

_ALWAYS = frozenset({TICK})


class FilterError(ValueError):
    """A ``types`` or ``device_id`` filter that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events one client wants.  Pure: ``matches`` looks only at the event.

    >>> EventFilter.parse({"types": "check.created", "device_id": "3"}).matches(
    ...     {"type": "check.created", "payload": {"device_id": 3}})
    True
    """

    types: frozenset[str] | None = None
    device_id: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> EventFilter:
        types = None
        raw_types = params.get("types")
        if raw_types is not None:
            types = frozenset(t.strip() for t in raw_types.split(",") if t.strip())
            if not types:
                raise FilterError("types: name at least one event type")
            unknown = sorted(types - EVENT_TYPES.keys())
            if unknown:
                names = ", ".join(repr(t[:50]) for t in unknown[:5])
                raise FilterError(
                    f"types: unknown event type {names}; known: {', '.join(sorted(EVENT_TYPES))}"
                )
        device_id = None
        raw_id = params.get("device_id")
        if raw_id is not None:
            try:
                device_id = int(raw_id)
            except ValueError:
                raise FilterError(f"device_id: not an integer: {raw_id[:50]!r}") from None
        return cls(types=types, device_id=device_id)

    def accepts(self, out: _Outgoing) -> bool:
        """:meth:`matches`, decoding the event only when the device filter needs it."""
        if out.kind in _ALWAYS:
            return True
        if self.types is not None and out.kind not in self.types:
            return False
        return self.device_id is None or _device_of(out.event()) == self.device_id

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.accepts(_Outgoing(event.get("type"), event=event))


class _Outgoing:
    """One event on its way to clients: its JSON text and, only when a filter needs its
    payload, the event decoded; each made at most once, whatever the number of clients."""

    __slots__ = ("_event", "_text", "kind")

    def __init__(
        self, kind: Any, *, event: Mapping[str, Any] | None = None, text: str | None = None
    ) -> None:
        self.kind = kind
        self._event = event
        self._text = text

    def event(self) -> Mapping[str, Any]:
        if self._event is None:
            decoded = json.loads(self._text or "null")
            self._event = decoded if isinstance(decoded, dict) else {}
        return self._event

    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self._event, separators=(",", ":"), default=json_default)
        return self._text


def _device_of(event: Mapping[str, Any]) -> int | None:
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return None
    value = payload.get("id") if event.get("type") in DEVICE_EVENTS else payload.get("device_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(eq=False)
class Subscriber:
    """One client's end of the hub: a queue of JSON texts of at most ``max_bytes``.

    Bounded in bytes, not in events: NATS messages reach 1 MB, so a count would let one
    stuck client hold hundreds of MB, or drop a fast one that briefly lags behind a burst
    of small events.  The texts are ASCII (``json.dumps`` escapes the rest): characters
    are bytes."""

    id: int
    filter: EventFilter
    max_bytes: int
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, text: str) -> bool:
        """Queue ``text`` unless it would pass the budget; False means: drop this client."""
        if self.dropped.is_set() or self.queued_bytes + len(text) > self.max_bytes:
            return False
        self.queue.put_nowait(text)
        self.queued_bytes += len(text)
        return True

    async def take(self) -> str:
        """The next text to send (waits for one)."""
        text = await self.queue.get()
        self.queued_bytes -= len(text)
        return text


class Hub:
    """Fan-out of events to subscribers: a listener on the process's event feed (of its
    installation, ``installation``: the id in its database), one tick."""

    def __init__(
        self,
        nc: Client,
        subject: str,
        installation: str,
        *,
        tick_seconds: float,
        client_buffer_bytes: int,
    ) -> None:
        self._subject = subject
        self._feed: EventFeed = event_feed(nc, subject, installation)
        self._tick_seconds = tick_seconds
        self._client_buffer_bytes = client_buffer_bytes
        self._subscribers: set[Subscriber] = set()
        self._ids = itertools.count(1)
        self._unlisten: Callable[[], Awaitable[None]] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0
        self.inbound = 0

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        self._unlisten = await self._feed.listen(self._on_message)
        self._ticker = asyncio.create_task(self._tick(), name="ws-tick")
        log.info(
            "ws hub started subject=%s tick_s=%.0f client_buffer_bytes=%d",
            self._subject,
            self._tick_seconds,
            self._client_buffer_bytes,
        )

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._unlisten is not None:
            await self._unlisten()
            self._unlisten = None
        log.info(
            "ws hub stopped delivered=%d dropped=%d inbound=%d other_installations=%d",
            self.delivered,
            self.dropped,
            self.inbound,
            self._feed.foreign,
        )

    @property
    def foreign(self) -> int:
        """Events of other installations on the subject, dropped by this process's feed."""
        return self._feed.foreign

    @contextlib.asynccontextmanager
    async def subscribe(self, event_filter: EventFilter) -> AsyncIterator[Subscriber]:
        sub = Subscriber(next(self._ids), event_filter, self._client_buffer_bytes)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def broadcast(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for every subscriber it matches; never waits."""
        self._fan_out(_Outgoing(event.get("type"), event=event))

    def _fan_out(self, out: _Outgoing) -> None:
        for sub in list(self._subscribers):
            if not sub.filter.accepts(out):
                continue
            if sub.offer(out.text()):
                self.delivered += 1
            else:
                self.drop(sub, "queue overflow")

    def send(self, sub: Subscriber, event: Mapping[str, Any]) -> None:
        """Queue a reply for one subscriber (pong, echo)."""
        if not sub.offer(json.dumps(event, separators=(",", ":"))):
            self.drop(sub, "queue overflow")

    def drop(self, sub: Subscriber, reason: str) -> None:
        if sub.dropped.is_set():
            return
        sub.dropped.set()
        self._subscribers.discard(sub)
        self.dropped += 1
        log.warning(
            "ws client dropped client=%d reason=%s queued=%d queued_bytes=%d",
            sub.id,
            reason,
            sub.queue.qsize(),
            sub.queued_bytes,
        )

    def _on_message(self, msg: Msg) -> None:
        own = own_event_text(msg.data, msg.headers)
        if own is not None:  # ours: passed on as it came, decoded only for a device filter
            kind, text = own
            self._fan_out(_Outgoing(kind, text=text))
            return
        event = decode_message(msg.data, msg.headers)
        if event.get("type") == NATS_INBOUND:
            self.inbound += 1
            log.info("nats inbound subject=%s bytes=%d", msg.subject, len(msg.data))
        self.broadcast(event)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            self.broadcast({"type": TICK, "payload": {"at": isoformat_z(utcnow())}})
