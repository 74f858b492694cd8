"""A state change -> its notifications: ledger rows and queued deliveries.

Call :func:`enqueue_change` in the process whose state change landed (the compare-and-
swap decides that), after the commit; or :func:`enqueue_change_id` with the row's id.
Each (change, channel) gets a ``notifications`` row (inserted once, whoever else tries)
and a delivery message whose ``Nats-Msg-Id`` is ``notify:<change id>:<channel id>``
(reminders ``…:<n>``), so enqueuing twice queues and records nothing twice.  A snoozed
device, or one in a maintenance window, gets rows marked ``suppressed`` and no message.
With no channel, nothing is recorded or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from jobs.alerts.job import NotifyJob
from jobs.alerts.kick import kick_notifications
from jobs.alerts.policy import ChannelRef, channels_for, wants
from jobs.scheduling.calendar import load_windows
from jobs.scheduling.windows import SUPPRESS_ALERTS, Window, in_maintenance
from storage import alert_repo
from storage.db import session_factory
from storage.models import Device
from storage.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeRecord:
    """A stored state change (a ``state_changes`` row), as its listeners are told of it."""

    id: int
    device_id: int
    revision: int
    from_state: str
    to_state: str
    at: datetime
    cause: str | None = None
    run_key: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> ChangeRecord:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass
class Enqueued:
    queued: list[int] = field(default_factory=list)  # channel ids with a delivery queued
    suppressed: list[int] = field(default_factory=list)
    reason: str | None = None
    new_rows: int = 0  # ledger rows this call recorded (0: another call got there first)


def suppression(device: Device, windows: list[Window], t: datetime) -> str | None:
    """Why alerts of ``device`` are silenced at ``t`` (None: they are not), pure."""
    if device.snoozed_until is not None and device.snoozed_until > t:
        return f"snoozed until {device.snoozed_until.isoformat()}"
    assert device.id is not None
    # Both modes silence alerts (with skip_probes there is nothing to judge either); a
    # suppress_alerts window is the one named when both cover the device.
    window = in_maintenance(windows, device.id, t, SUPPRESS_ALERTS) or in_maintenance(
        windows, device.id, t
    )
    return None if window is None else f"maintenance window {window.id}"


async def enqueue_change(
    engine: AsyncEngine,
    broker: AsyncBroker,
    change: ChangeRecord,
    *,
    reminder: int = 0,
    now: datetime | None = None,
    windows: list[Window] | None = None,
) -> Enqueued:
    """Record and queue the notifications of ``change`` (``reminder`` n > 0: its n-th
    reminder, judged at ``now``).  Raises what the database or the queue raised; calling
    again is safe."""
    async with session_factory(engine)() as session:
        device = await session.get(Device, change.device_id)
        channels = await alert_repo.list_channels(session)
    if device is None:
        return Enqueued()
    if reminder == 0 and not wants(device.notify_on, change.from_state, change.to_state):
        return Enqueued()
    refs = [ChannelRef(c.id, c.is_default, c.is_active) for c in channels if c.id is not None]
    channel_ids = channels_for(device.channel_ids, refs)
    if not channel_ids:
        return Enqueued()
    at = change.at if reminder == 0 else (now or utcnow())
    reason = suppression(device, windows if windows is not None else await load_windows(engine), at)
    status = "suppressed" if reason else "pending"
    rows = [
        {
            "device_id": change.device_id,
            "channel_id": channel_id,
            "state_change_id": change.id,
            "reminder": reminder,
            "status": status,
            "reason": reason,
        }
        for channel_id in channel_ids
    ]
    landed = await alert_repo.record_notifications(engine, rows)
    if reason:
        log.info(
            "notifications suppressed change=%d device=%d reminder=%d channels=%d reason=%s",
            change.id, change.device_id, reminder, landed, reason,
        )  # fmt: skip
        return Enqueued(suppressed=channel_ids, reason=reason, new_rows=landed)
    jobs = [
        NotifyJob(state_change_id=change.id, channel_id=channel_id, reminder=reminder)
        for channel_id in channel_ids
    ]
    # Queued even when another process recorded the rows first: the message id makes
    # a second kick a no-op, and a row left pending by a crash before its kick is served.
    await kick_notifications(broker, jobs)
    log.info(
        "notifications queued change=%d device=%d %s->%s reminder=%d channels=%s new_rows=%d",
        change.id, change.device_id, change.from_state, change.to_state, reminder,
        ",".join(map(str, channel_ids)), landed,
    )  # fmt: skip
    return Enqueued(queued=channel_ids, new_rows=landed)


def change_listener(engine: AsyncEngine, broker: AsyncBroker) -> Callable[[Any], Awaitable[None]]:
    """``on_change(record)`` for the health hook's listeners: ``record`` is anything with
    the attributes of :class:`ChangeRecord` (a ``state_changes`` row, W2's record).  A
    failure is logged, never raised into the writer: the leader's sweep re-queues a
    notification left pending (:func:`jobs.alerts.sweep.AlertSweeper.requeue_stale`)."""

    async def on_change(record: Any) -> None:
        fields = {k: getattr(record, k) for k in ChangeRecord.__dataclass_fields__}
        try:
            await enqueue_change(engine, broker, ChangeRecord(**fields))
        except Exception as exc:
            log.warning("notifications not queued change=%s error=%r", fields["id"], exc)

    return on_change


async def enqueue_change_id(engine: AsyncEngine, broker: AsyncBroker, change_id: int) -> Enqueued:
    """:func:`enqueue_change` for the ``state_changes`` row ``change_id``."""
    row = await alert_repo.state_change(engine, change_id)
    if row is None:
        log.warning("state change not found id=%d", change_id)
        return Enqueued()
    return await enqueue_change(engine, broker, ChangeRecord.of(row))
