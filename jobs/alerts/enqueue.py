"""A state change -> its notifications: ledger rows and queued deliveries.

Call :func:`enqueue_changes` with the changes a batch stored, in the process whose
state changes landed (the compare-and-swap decides that), after the commit and before
the results are acked; :func:`enqueue_change` for one, or :func:`enqueue_change_id`
with the row's id.  A batch costs one read of the active channels (nothing more when
there is none), one of its devices, one of the maintenance windows (when a row is to be
recorded), one insert of ledger rows and one kick of deliveries.
Each (change, channel) gets a ``notifications`` row (inserted once, whoever else tries)
and a delivery message whose ``Nats-Msg-Id`` is ``notify:<change id>:<channel id>``
(reminders ``…:<n>``), so enqueuing twice queues and records nothing twice.  A snoozed
device, or one in a maintenance window, gets rows marked ``suppressed`` and no message.
With no channel, nothing is recorded or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from jobs.alerts.job import NotifyJob
from jobs.alerts.kick import kick_notifications
from jobs.alerts.policy import (
    HELD_BY_MAINTENANCE,
    PROBLEM_STATES,
    ChannelRef,
    after_maintenance,
    channels_for,
    held_by,
    wants,
)
from jobs.scheduling.calendar import load_windows
from jobs.scheduling.windows import SUPPRESS_ALERTS, Window, in_maintenance
from storage import alert_repo
from storage.alert_repo import AlertTarget
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


def suppression(device: Device | AlertTarget, windows: list[Window], t: datetime) -> str | None:
    """Why alerts of ``device`` are silenced at ``t`` (None: they are not), pure."""
    if device.snoozed_until is not None and device.snoozed_until > t:
        return f"snoozed until {device.snoozed_until.isoformat()}"
    device_id = device.device_id if isinstance(device, AlertTarget) else device.id
    assert device_id is not None
    # Both modes silence alerts (with skip_probes there is nothing to judge either); a
    # suppress_alerts window is the one named when both cover the device.
    window = in_maintenance(windows, device_id, t, SUPPRESS_ALERTS) or in_maintenance(
        windows, device_id, t
    )
    return None if window is None else held_by(window.id)


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
    done = await enqueue_changes(
        engine, broker, [change], reminder=reminder, now=now, windows=windows
    )
    return done[0]


async def enqueue_changes(
    engine: AsyncEngine,
    broker: AsyncBroker,
    changes: Sequence[ChangeRecord],
    *,
    reminder: int = 0,
    now: datetime | None = None,
    windows: list[Window] | None = None,
) -> list[Enqueued]:
    """:func:`enqueue_change` for many changes at once (a batch the writer stored), one
    :class:`Enqueued` each, in order: one read of the channels and the devices concerned
    (the channels alone when none is active), the maintenance windows read once when a
    row is to be recorded, the ledger rows in one insert, the deliveries in one kick."""
    done = [Enqueued() for _ in changes]
    if not changes:
        return done
    channels, targets = await alert_repo.alert_targets(engine, [c.device_id for c in changes])
    if not channels:
        return done
    refs = [ChannelRef(i, is_default, True) for i, is_default in channels]
    at = None if reminder == 0 else (now or utcnow())
    rows: list[dict[str, Any]] = []
    wanted: list[tuple[int, list[int], str | None]] = []  # (index, channels, reason)
    for index, change in enumerate(changes):
        device = targets.get(change.device_id)
        if device is None:
            continue
        if reminder == 0 and not wants(device.notify_on, change.from_state, change.to_state):
            continue
        channel_ids = channels_for(device.channel_ids, refs)
        if not channel_ids:
            continue
        if windows is None:
            windows = await load_windows(engine)
        reason = suppression(device, windows, change.at if at is None else at)
        status = "suppressed" if reason else "pending"
        rows.extend(
            {
                "device_id": change.device_id,
                "channel_id": channel_id,
                "state_change_id": change.id,
                "reminder": reminder,
                "status": status,
                "reason": reason,
            }
            for channel_id in channel_ids
        )
        wanted.append((index, channel_ids, reason))
    if not rows:
        return done
    landed = await alert_repo.record_notifications_by_change(engine, rows)
    jobs = [
        NotifyJob(state_change_id=changes[index].id, channel_id=channel_id, reminder=reminder)
        for index, channel_ids, reason in wanted
        if not reason
        for channel_id in channel_ids
    ]
    # Queued even when another process recorded the rows first: the message id makes
    # a second kick a no-op, and a row left pending by a crash before its kick is served.
    await kick_notifications(broker, jobs)
    for index, channel_ids, reason in wanted:
        change = changes[index]
        new_rows = landed[change.id]
        if reason:
            log.info(
                "notifications suppressed change=%d device=%d reminder=%d channels=%d reason=%s",
                change.id, change.device_id, reminder, new_rows, reason,
            )  # fmt: skip
            done[index] = Enqueued(suppressed=channel_ids, reason=reason, new_rows=new_rows)
        else:
            log.info(
                "notifications queued change=%d device=%d %s->%s reminder=%d channels=%s "
                "new_rows=%d",
                change.id, change.device_id, change.from_state, change.to_state, reminder,
                ",".join(map(str, channel_ids)), new_rows,
            )  # fmt: skip
            done[index] = Enqueued(queued=channel_ids, new_rows=new_rows)
    return done


async def enqueue_after_maintenance(
    engine: AsyncEngine,
    broker: AsyncBroker,
    now: datetime,
    windows: list[Window] | None = None,
) -> tuple[set[int], int]:
    """Tell what maintenance kept quiet: each device still down (or degraded) whose latest
    change's notifications a window held back and nobody was told of since gets one
    notification per channel, "still down after maintenance", once nothing holds its
    alerts at ``now`` (no window in force, no snooze), to the channels and under the
    ``notify_on`` it has now.  Returns (the changes queued, the ledger rows recorded).

    The notification is a reminder of the same change numbered one past the highest
    recorded (all held back, so that number stays the same however often, and by however
    many schedulers, it is asked): its ledger row and ``Nats-Msg-Id`` are recorded and
    queued once, and its ``reason`` (``after maintenance window N``) tells the delivery
    what to say.  Reminders go on counting from the change, so the one due at the same
    time is this row; the next reminder follows it.
    """
    held = await alert_repo.held_changes(engine, sorted(PROBLEM_STATES), HELD_BY_MAINTENANCE)
    if not held:
        return set(), 0
    channels, targets = await alert_repo.alert_targets(engine, [r["device_id"] for r in held])
    refs = [ChannelRef(i, is_default, True) for i, is_default in channels]
    if windows is None:
        windows = await load_windows(engine)
    rows: list[dict[str, Any]] = []
    jobs: list[NotifyJob] = []
    for row in held:
        change = ChangeRecord.of(row)
        device = targets.get(change.device_id)
        if device is None or not wants(device.notify_on, change.from_state, change.to_state):
            continue
        if row["channel_id"] not in channels_for(device.channel_ids, refs):
            continue
        if suppression(device, windows, now) is not None:
            continue  # still held: asked again at the next sweep
        reminder = row["last_reminder"] + 1
        rows.append({
            "device_id": change.device_id, "channel_id": row["channel_id"],
            "state_change_id": change.id, "reminder": reminder, "status": "pending",
            "reason": after_maintenance(row["held_reason"]),
        })  # fmt: skip
        jobs.append(
            NotifyJob(state_change_id=change.id, channel_id=row["channel_id"], reminder=reminder)
        )
    if not rows:
        return set(), 0
    landed = await alert_repo.record_notifications_by_change(engine, rows)
    await kick_notifications(broker, jobs)
    for r in rows:
        log.info(
            "notification queued after maintenance change=%d device=%d channel=%d "
            "reminder=%d reason=%s new_rows=%d",
            r["state_change_id"], r["device_id"], r["channel_id"], r["reminder"], r["reason"],
            landed[r["state_change_id"]],
        )  # fmt: skip
    return {r["state_change_id"] for r in rows}, sum(landed.values())


def change_listener(
    engine: AsyncEngine, broker: AsyncBroker
) -> Callable[[Sequence[Any]], Awaitable[None]]:
    """``on_changes(records)`` for the health hook's listeners: every change a batch
    stored, at once; each record is anything with the attributes of
    :class:`ChangeRecord` (a ``state_changes`` row, W2's record).  A failure is logged,
    never raised into the writer: the leader's sweep re-queues a notification left
    pending (:func:`jobs.alerts.sweep.AlertSweeper.requeue_stale`)."""

    async def on_changes(records: Sequence[Any]) -> None:
        changes = [
            ChangeRecord(**{k: getattr(r, k) for k in ChangeRecord.__dataclass_fields__})
            for r in records
        ]
        try:
            await enqueue_changes(engine, broker, changes)
        except Exception as exc:
            ids = ",".join(str(c.id) for c in changes)
            log.warning("notifications not queued changes=%s error=%r", ids, exc)

    return on_changes


async def enqueue_change_id(engine: AsyncEngine, broker: AsyncBroker, change_id: int) -> Enqueued:
    """:func:`enqueue_change` for the ``state_changes`` row ``change_id``."""
    row = await alert_repo.state_change(engine, change_id)
    if row is None:
        log.warning("state change not found id=%d", change_id)
        return Enqueued()
    return await enqueue_change(engine, broker, ChangeRecord.of(row))
