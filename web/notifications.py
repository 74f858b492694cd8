"""``GET /notifications``: the ledger of alert deliveries, newest first."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from starlette.responses import Response

from storage import alert_repo
from storage.db import session_factory
from storage.types import MAX_ID
from web.alert_schemas import NotificationRead
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, QueryModel, Reply, respond
from web.services import services_of


class NotificationQuery(QueryModel):
    device_id: int | None = Field(None, ge=1, le=MAX_ID, description="only this device")
    channel_id: int | None = Field(None, ge=1, le=MAX_ID, description="only this channel")
    status: Literal["pending", "sent", "failed", "suppressed"] | None = None
    limit: int = Field(50, ge=1, le=500)
    before_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="the next page: rows older than this id"
    )


async def list_notifications(call: Call[NoBody, NotificationQuery]) -> Response:
    """Each row is one (state change, channel, reminder): ``pending`` while it is being
    tried, then ``sent`` or ``failed``; ``suppressed`` (snooze, maintenance) never sent.
    Page back with ``before_id`` = the last id of a page."""
    q = call.query
    async with session_factory(services_of(call.request).engine)() as session:
        rows = await alert_repo.list_notifications(
            session,
            device_id=q.device_id,
            channel_id=q.channel_id,
            status=q.status,
            limit=q.limit,
            before_id=q.before_id,
        )
    return respond([NotificationRead.model_validate(r) for r in rows])


ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        "/notifications",
        list_notifications,
        query=NotificationQuery,
        tags=("alerts",),
        summary="List notifications",
        responses={200: Reply("Notifications, newest first", list[NotificationRead])},
    ),
]
