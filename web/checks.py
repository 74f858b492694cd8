"""``/devices/{id}/checks``: a device's check history, and results recorded by hand."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated

from pydantic import BeforeValidator, Field
from starlette.responses import Response

from jobs.events import CHECK_CREATED
from jobs.probe.row import check_event_payload, check_row
from jobs.probe.run import ProbeResult
from storage import repo
from storage.db import session_factory
from storage.types import utcnow
from web.devices import NOT_FOUND, device_or_404
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, QueryModel, Reply, respond
from web.errors import ApiError
from web.schemas import CheckCreate, CheckRead, UtcTime
from web.services import services_of

log = logging.getLogger(__name__)


def _iso_text(value: object) -> object:
    """A query string's number would be read as a Unix time: only ISO 8601 text is taken."""
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]", value):
        raise ValueError("an ISO 8601 date-time with a zone is needed (2026-01-31T12:00:00Z)")
    return value


IsoTime = Annotated[UtcTime, BeforeValidator(_iso_text)]


class CheckQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000, description="how many, newest first")
    since: IsoTime | None = Field(
        None, description="only checks at or after this time (ISO 8601 with a zone)"
    )


async def list_checks(call: Call[NoBody, CheckQuery]) -> Response:
    """The device's latest checks, newest first."""
    async with session_factory(services_of(call.request).engine)() as session:
        device = await device_or_404(session, call.path["device_id"])
        assert device.id is not None
        rows = await repo.list_checks(
            session, device.id, limit=call.query.limit, since=call.query.since
        )
    return respond([CheckRead.model_validate(row) for row in rows])


async def create_check(call: Call[CheckCreate, NoQuery]) -> Response:
    """Record a result by hand (``source: manual``); announced as ``check.created``."""
    services = services_of(call.request)
    body = call.body
    device_id: int = call.path["device_id"]
    result = ProbeResult(
        status_up=body.status_up,
        latency_ms=body.latency_ms,
        status_code=body.status_code,
        error=body.error,
    )
    row = check_row(
        device_id=device_id,
        run_key=f"manual:{uuid.uuid4().hex}",
        source="manual",
        result=result,
        checked_at=body.checked_at or utcnow(),
    )
    # The device lookup and the insert are one statement: a device deleted meanwhile
    # is a 404, never a check without its device.
    stored = await repo.insert_device_check(services.engine, row)
    if stored is None:
        raise ApiError(404, f"device {device_id} not found")
    check = CheckRead.model_validate(stored)
    log.info("manual check device=%d up=%s", device_id, body.status_up)
    await services.events.publish(CHECK_CREATED, check_event_payload(stored))
    return respond(check, 201)


_PATH = "/devices/{device_id:int}/checks"
_TAGS = ("checks",)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        _PATH,
        list_checks,
        query=CheckQuery,
        tags=_TAGS,
        summary="A device's check history",
        responses={200: Reply("Checks, newest first", list[CheckRead]), 404: NOT_FOUND},
    ),
    Endpoint(
        "POST",
        _PATH,
        create_check,
        body=CheckCreate,
        tags=_TAGS,
        summary="Record a check by hand",
        responses={201: Reply("Stored", CheckRead), 404: NOT_FOUND},
    ),
]
