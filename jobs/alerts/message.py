"""What a notification says: the JSON body of a webhook (title, text, the state change,
the device, its last result, a link), whose title and text an Apprise channel sends."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.alerts.templates import TemplateProblem, render_message
from storage import alert_repo
from storage.alert_models import Channel
from storage.db import session_factory
from storage.models import Device

log = logging.getLogger(__name__)


def device_link(settings: Settings, device_id: int | None) -> str:
    """The dashboard's page of the device (``/#/devices/N``: what a person clicking the
    link in a chat or an email wants, not the API's JSON); None: the dashboard itself."""
    base = settings.alert_link_base.rstrip("/") or f"http://{settings.web_host}:{settings.web_port}"
    return f"{base}/" if device_id is None else f"{base}/#/devices/{device_id}"


def compose(
    channel: Channel,
    change: dict[str, Any],
    device: dict[str, Any],
    last: dict[str, Any] | None,
    link: str,
    reminder: int,
    event: str = "state_change",
    after_maintenance: bool = False,
) -> dict[str, Any]:
    """The body, pure; a channel template that fails here falls back to the default.
    ``event`` is ``reminder`` for a reminder, ``after_maintenance`` for the notification
    of a change a maintenance window kept quiet (the device still in that state)."""
    context = {
        "device": device,
        "state": change["to_state"],
        "from_state": change["from_state"],
        "cause": change.get("cause"),
        "since": change["at"].isoformat(),
        "error": last.get("error") if last else None,
        "latency_ms": last.get("latency_ms") if last else None,
        "link": link,
        "reminder": reminder,
        "after_maintenance": after_maintenance,
    }
    try:
        title, text = render_message(channel.title_template, channel.text_template, context)
    except TemplateProblem as exc:
        log.warning("channel template failed channel=%s error=%s", channel.id, exc)
        title, text = render_message(None, None, context)
    return {
        "event": "after_maintenance" if after_maintenance else "reminder" if reminder else event,
        "title": title,
        "text": text,
        "reminder": reminder,
        "state_change": {
            "id": change["id"],
            "device_id": change["device_id"],
            "from": change["from_state"],
            "to": change["to_state"],
            "at": change["at"].isoformat(),
            "cause": change.get("cause"),
            "run_key": change.get("run_key"),
        },
        "device": device,
        "last_result": None
        if last is None
        else {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in last.items()},
        "link": link,
    }


async def message_for(
    engine: AsyncEngine,
    settings: Settings,
    channel: Channel,
    change_id: int,
    reminder: int,
    after_maintenance: bool = False,
) -> dict[str, Any] | None:
    change = await alert_repo.state_change(engine, change_id)
    if change is None:
        return None
    async with session_factory(engine)() as session:
        row = await session.get(Device, change["device_id"])
    device = {"id": change["device_id"], "name": row.name if row else "(deleted)",
              "address": row.address if row else None}  # fmt: skip
    last = await alert_repo.last_result(engine, change["device_id"])
    link = device_link(settings, device["id"])
    return compose(
        channel, change, device, last, link, reminder, after_maintenance=after_maintenance
    )
