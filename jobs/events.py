"""Events on core NATS ``items.updates``: ``{"type": ..., "payload": {...}}``.

fleetprobe marks what it publishes with the ``Fleetprobe-Origin`` header, so a message
from outside (``nats pub items.updates ...``) is told apart by a header, not by guessing
from its body, and relayed to WebSocket clients as ``nats.inbound``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client

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


def encode_event(type_: str, payload: Any) -> bytes:
    return json.dumps(
        {"type": type_, "payload": payload}, default=str, separators=(",", ":")
    ).encode()


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
