"""``/channels``: where alerts go (webhooks, Apprise URLs), and ``POST /channels/{id}/test``.

A channel's secrets (its URL's credentials and tokens, ``secret``, header values) are
accepted and stored, never answered or logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.responses import Response

from core.settings import Settings
from jobs.alerts.message import compose, device_link
from jobs.alerts.senders import alert_client, send
from storage import alert_repo
from storage.alert_models import Channel
from storage.db import session_factory
from storage.repo import add_row, update_row
from web.alert_schemas import (
    ChannelCreate,
    ChannelRead,
    ChannelTestReport,
    ChannelUpdate,
    check_channel_url,
)
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, Reply, respond
from web.errors import ApiError, ErrorBody, RequestInvalid
from web.services import services_of

log = logging.getLogger(__name__)


async def channel_or_404(session: AsyncSession, channel_id: int) -> Channel:
    row = await session.get(Channel, channel_id)
    if row is None:
        raise ApiError(404, f"channel {channel_id} not found")
    return row


def _check_url(kind: str, url: str) -> None:
    problem = check_channel_url(kind, url)
    if problem is not None:
        raise RequestInvalid.field(["body", "url"], problem)


async def check_channel_ids(session: AsyncSession, ids: Sequence[int] | None) -> None:
    """A device's ``channel_ids`` must name channels that exist: a 422 naming the field."""
    if not ids:
        return
    missing = sorted(set(ids) - await alert_repo.existing_channel_ids(session, ids))
    if missing:
        raise RequestInvalid.field(
            ["body", "channel_ids"], f"no channel has id {', '.join(map(str, missing))}"
        )


async def check_alert_policy(
    session: AsyncSession, settings: Settings, fields: Mapping[str, Any]
) -> None:
    """The alert fields of a device being created or changed (absent ones pass)."""
    # (reminder_every_minutes' floor, REMINDER_MIN_MINUTES, is checked with the other
    # device fields: web.devices)
    await check_channel_ids(session, fields.get("channel_ids"))


async def list_channels(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await alert_repo.list_channels(session)
    return respond([ChannelRead.of(r) for r in rows])


async def create_channel(call: Call[ChannelCreate, NoQuery]) -> Response:
    """A new channel.  Example: ``{"name": "ops", "kind": "apprise", "url":
    "ntfy://ntfy.sh/my-topic", "is_default": true}``."""
    body = call.body
    _check_url(body.kind, body.url)
    async with session_factory(services_of(call.request).engine)() as session:
        row = await add_row(session, Channel(**body.model_dump()))
        channel = ChannelRead.of(row)
    log.info("channel created id=%d kind=%s", channel.id, channel.kind)
    return respond(channel, 201, headers={"Location": f"/channels/{channel.id}"})


async def get_channel(call: Call[NoBody, NoQuery]) -> Response:
    async with session_factory(services_of(call.request).engine)() as session:
        row = await channel_or_404(session, call.path["channel_id"])
    return respond(ChannelRead.of(row))


async def update_channel(call: Call[ChannelUpdate, NoQuery]) -> Response:
    """Change the fields sent (a secret is replaced by sending it again, removed with
    null)."""
    changes = call.body.changes()
    async with session_factory(services_of(call.request).engine)() as session:
        row = await channel_or_404(session, call.path["channel_id"])
        if "kind" in changes or "url" in changes:
            _check_url(changes.get("kind", row.kind), changes.get("url", row.url))
        if changes:
            row = await update_row(session, row, **changes)
        channel = ChannelRead.of(row)
    if changes:
        log.info("channel updated id=%d fields=%s", channel.id, ",".join(sorted(changes)))
    return respond(channel)


async def delete_channel(call: Call[NoBody, NoQuery]) -> Response:
    """Delete the channel (its notifications stay in the history); devices that named it
    in ``channel_ids`` no longer do."""
    async with session_factory(services_of(call.request).engine)() as session:
        row = await channel_or_404(session, call.path["channel_id"])
        devices = await alert_repo.delete_channel(session, row)
    log.info("channel deleted id=%d devices=%d", call.path["channel_id"], devices)
    return respond(None, 204)


def _test_body(channel: Channel, link: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    change = {"id": 0, "device_id": 0, "from_state": "up", "to_state": "down", "at": now,
              "cause": "a test message from fleetprobe", "run_key": None}  # fmt: skip
    device = {"id": 0, "name": "test", "address": None}
    return compose(channel, change, device, None, link, 0, event="test")


async def test_channel(call: Call[NoBody, NoQuery]) -> Response:
    """Send a test message now; answers what the receiver said (a failed send is a 200
    with ``ok: false``)."""
    services = services_of(call.request)
    settings = services.settings
    async with session_factory(services.engine)() as session:
        channel = await channel_or_404(session, call.path["channel_id"])
    body = _test_body(channel, device_link(settings, None))
    timeout = settings.alert_attempt_seconds
    # The same sending path as a delivery (jobs.alerts.task), with a key of its own: a
    # receiver that drops repeats by Idempotency-Key never drops a test.
    key = f"test:{channel.id}:{uuid.uuid4().hex}"
    async with alert_client(timeout) as client:
        outcome = await send(channel, body, key=key, http=client, timeout=timeout)
    log.info(
        "channel test id=%d ok=%s response_code=%s", channel.id, outcome.ok, outcome.response_code
    )
    return respond(
        ChannelTestReport(
            ok=outcome.ok,
            response_code=outcome.response_code,
            error=outcome.error,
            answer=outcome.answer,
        )
    )


_ALL = "/channels"
_ONE = "/channels/{channel_id:int}"
_TAGS = ("alerts",)
NOT_FOUND = Reply("No channel has this id", ErrorBody)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint("GET", _ALL, list_channels, tags=_TAGS, summary="List channels",
             responses={200: Reply("Channels (secrets masked)", list[ChannelRead])}),
    Endpoint("POST", _ALL, create_channel, body=ChannelCreate, tags=_TAGS,
             summary="Create a channel", responses={201: Reply("Created", ChannelRead)}),
    Endpoint("GET", _ONE, get_channel, tags=_TAGS, summary="Get a channel",
             responses={200: Reply("The channel", ChannelRead), 404: NOT_FOUND}),
    Endpoint("PATCH", _ONE, update_channel, body=ChannelUpdate, tags=_TAGS,
             summary="Change a channel",
             responses={200: Reply("The changed channel", ChannelRead), 404: NOT_FOUND}),
    Endpoint("DELETE", _ONE, delete_channel, tags=_TAGS, summary="Delete a channel",
             responses={204: Reply("Deleted"), 404: NOT_FOUND}),
    Endpoint("POST", _ONE + "/test", test_channel, tags=_TAGS,
             summary="Send a test message now",
             responses={200: Reply("What the receiver answered", ChannelTestReport),
                        404: NOT_FOUND}),
]  # fmt: skip
