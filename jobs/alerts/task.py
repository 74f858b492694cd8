"""One delivery attempt of one notification, run by a worker.

The ledger row decides: a row no longer ``pending`` was finished by an earlier delivery
(a redelivered message), and nothing is sent.  A failed attempt with tries left queues
the next one with its ``not_before``; a wait longer than a task may hold (ack_wait) is
handed on to a new message.  Only the delivery whose update finished the row publishes
``notification.sent`` / ``notification.failed``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.alerts.job import NotifyJob
from jobs.alerts.kick import kick_notifications
from jobs.alerts.message import message_for
from jobs.alerts.policy import is_after_maintenance, retry_delay
from jobs.alerts.senders import Delivery, send
from jobs.events import NOTIFICATION_FAILED, NOTIFICATION_SENT, EventPublisher
from jobs.metrics import count_notification
from storage import alert_repo
from storage.alert_models import Channel
from storage.db import session_factory
from storage.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class AlertParts:
    """What a delivery needs of the worker runtime."""

    settings: Settings
    engine: AsyncEngine
    broker: AsyncBroker
    http: httpx.AsyncClient
    events: EventPublisher


async def deliver(job: NotifyJob, parts: AlertParts) -> dict[str, Any]:
    settings = parts.settings
    if job.not_before is not None:
        wait = (job.not_before - utcnow()).total_seconds()
        if wait > settings.alert_hold_seconds:
            await asyncio.sleep(settings.alert_hold_seconds)
            await kick_notifications(parts.broker, [job.model_copy(update={"hop": job.hop + 1})])
            return {"key": job.key, "status": "waiting", "attempt": job.attempt}
        if wait > 0:
            await asyncio.sleep(wait)
    row = await alert_repo.get_notification(
        parts.engine, job.state_change_id, job.channel_id, job.reminder
    )
    if row is None or row["status"] != "pending":
        # Finished by an earlier delivery of the same notification (or never recorded).
        return {"key": job.key, "status": row["status"] if row else "missing"}
    async with session_factory(parts.engine)() as session:
        channel = await session.get(Channel, job.channel_id)
    if channel is None or not channel.is_active:
        outcome = Delivery(
            False, error="channel deleted" if channel is None else "channel inactive"
        )
        return await _finish(parts, job, row, "failed", outcome)
    body = await message_for(
        parts.engine, settings, channel, job.state_change_id, job.reminder,
        after_maintenance=is_after_maintenance(row["reason"]),
    )  # fmt: skip
    if body is None:
        return await _finish(parts, job, row, "failed", Delivery(False, error="state change gone"))
    outcome = await send(
        channel, body, key=job.key, http=parts.http, timeout=settings.alert_attempt_seconds
    )
    if outcome.ok:
        return await _finish(parts, job, row, "sent", outcome)
    delay = retry_delay(settings.alert_retry_delays_seconds, job.attempt)
    if delay is None:
        return await _finish(parts, job, row, "failed", outcome)
    await alert_repo.note_attempt(
        parts.engine, job.state_change_id, job.channel_id, job.reminder, job.attempt,
        response_code=outcome.response_code, error=outcome.error,
    )  # fmt: skip
    retry = NotifyJob(
        state_change_id=job.state_change_id,
        channel_id=job.channel_id,
        reminder=job.reminder,
        attempt=job.attempt + 1,
        not_before=utcnow() + timedelta(seconds=delay),
    )
    await kick_notifications(parts.broker, [retry])
    log.info(
        "notification attempt failed key=%s attempt=%d retry_in_s=%g error=%s",
        job.key, job.attempt, delay, outcome.error,
    )  # fmt: skip
    return {"key": job.key, "status": "retrying", "attempt": job.attempt}


async def _finish(
    parts: AlertParts, job: NotifyJob, row: dict[str, Any], status: str, outcome: Delivery
) -> dict[str, Any]:
    at: datetime = utcnow()
    landed = await alert_repo.finish_notification(
        parts.engine, job.state_change_id, job.channel_id, job.reminder,
        status=status, attempt=max(job.attempt, row["attempts"]),
        response_code=outcome.response_code, error=outcome.error, at=at,
    )  # fmt: skip
    if landed is None:
        return {"key": job.key, "status": "finished elsewhere"}
    count_notification(status)  # once per notification: the delivery whose update landed
    log.info(
        "notification %s key=%s attempt=%d response_code=%s error=%s",
        status, job.key, job.attempt, outcome.response_code, outcome.error,
    )  # fmt: skip
    await parts.events.publish(
        NOTIFICATION_SENT if status == "sent" else NOTIFICATION_FAILED,
        {
            "notification_id": landed,
            "device_id": row["device_id"],
            "channel_id": job.channel_id,
            "state_change_id": job.state_change_id,
            "reminder": job.reminder,
            "attempt": job.attempt,
            "status": status,
            "response_code": outcome.response_code,
            "error": outcome.error,
        },
    )
    return {"key": job.key, "status": status, "attempt": job.attempt}
