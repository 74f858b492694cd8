"""Alert policy, pure: which state changes a device announces, to which channels, under
which message ids, and when each retry is due.

>>> wants(None, "up", "down"), wants(None, "down", "up"), wants(None, "up", "degraded")
(True, True, False)
>>> delivery_key(12, 3, 0), delivery_key(12, 3, 2)
('notify:12:3', 'notify:12:3:2')
>>> reminder_due(600.0, 5), reminder_due(299.0, 5)
(2, 0)
>>> after_maintenance(held_by(3)), is_after_maintenance("after maintenance window 3")
('after maintenance window 3', True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_NOTIFY_ON = ("down", "up")
NOTIFY_ON_CHOICES = ("down", "up", "degraded")
PROBLEM_STATES = frozenset({"down", "degraded"})
# A ledger row's ``reason``: a notification a window held back (``suppressed``), and the
# one sent for its change once no window holds the device any more (still down).
HELD_BY_MAINTENANCE = "maintenance window "
AFTER_MAINTENANCE = "after " + HELD_BY_MAINTENANCE


def wants(notify_on: Sequence[str] | None, from_state: str, to_state: str) -> bool:
    """Whether a device with ``notify_on`` announces ``from_state -> to_state``.

    ``down`` and ``degraded`` announce entering that state; ``up`` announces a recovery
    from a state that was announced (down, or degraded when ``degraded`` is followed).
    Changes to or from unknown and paused are not announced (nobody was told of them).
    """
    follow = set(DEFAULT_NOTIFY_ON if notify_on is None else notify_on)
    if to_state in PROBLEM_STATES:
        return to_state in follow and from_state != to_state
    if to_state == "up":
        announced = from_state == "down" or (from_state == "degraded" and "degraded" in follow)
        return "up" in follow and announced
    return False


@dataclass(frozen=True)
class ChannelRef:
    id: int
    is_default: bool
    is_active: bool


def channels_for(
    device_channel_ids: Sequence[int] | None, channels: Iterable[ChannelRef]
) -> list[int]:
    """The active channels a device notifies: its own list, or every default channel."""
    active = {c.id: c for c in channels if c.is_active}
    if device_channel_ids is None:
        return sorted(i for i, c in active.items() if c.is_default)
    return sorted({i for i in device_channel_ids if i in active})


def delivery_key(state_change_id: int, channel_id: int, reminder: int) -> str:
    """The notification's name: its first message's ``Nats-Msg-Id`` and every attempt's
    ``Idempotency-Key``."""
    base = f"notify:{state_change_id}:{channel_id}"
    return base if reminder == 0 else f"{base}:{reminder}"


def attempt_msg_id(key: str, attempt: int, hop: int) -> str:
    """The ``Nats-Msg-Id`` of an attempt's message: the key itself for the first; a retry,
    or a message handing a long wait on, names its attempt and hop."""
    if attempt == 1 and hop == 0:
        return key
    return f"{key}:a{attempt}" + (f":h{hop}" if hop else "")


def retry_delay(delays: Sequence[float], attempt: int) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (1-based), None: it was the last."""
    return delays[attempt - 1] if attempt <= len(delays) else None


def reminder_due(seconds_down: float, every_minutes: int) -> int:
    """The number of the latest reminder due ``seconds_down`` into an outage (0: none)."""
    if every_minutes <= 0 or seconds_down <= 0:
        return 0
    return int(seconds_down // (every_minutes * 60))


def held_by(window_id: int) -> str:
    """The reason of a notification held back by maintenance window ``window_id``."""
    return f"{HELD_BY_MAINTENANCE}{window_id}"


def after_maintenance(held_reason: str) -> str:
    """The reason of the notification sent after a window held ``held_reason``'s back."""
    return "after " + held_reason


def is_after_maintenance(reason: str | None) -> bool:
    """Whether a ledger row is the "still down after maintenance" notification."""
    return reason is not None and reason.startswith(AFTER_MAINTENANCE)
