"""``/devices/{id}/checks``: a device's check history, and results recorded by hand.

The history is newest first, at most :data:`MAX_PAGE` checks a page: ``limit`` (default
50), ``offset`` to page on, ``since`` / ``until`` (ISO 8601 with a zone; ``since`` <=
``checked_at`` < ``until``) to read a time range.  A result's ``source`` says where it
came from: ``schedule`` (its device's schedule), ``manual`` (``POST /jobs/probe``),
``cycle`` (``POST /tasks/run`` and the background loop), ``entered`` (recorded by hand
here; results stored before this value existed say ``manual``).
"""

from __future__ import annotations

import logging
import uuid

from pydantic import Field
from starlette.responses import Response

from jobs.events import CHECK_CREATED
from jobs.probe.row import check_event_payload, check_row
from jobs.probe.run import ProbeResult
from storage import repo
from storage.db import session_factory
from storage.types import utcnow
from web.devices import NOT_FOUND, device_or_404
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, NoQuery, QueryModel, Reply, respond
from web.errors import ApiError, RequestInvalid
from web.schemas import CheckCreate, CheckRead, QueryTime
from web.services import services_of

log = logging.getLogger(__name__)


# The largest page of check history one request reads.
MAX_PAGE = 1000


class CheckQuery(QueryModel):
    limit: int = Field(
        50, ge=1, le=MAX_PAGE, description=f"how many, newest first (at most {MAX_PAGE})"
    )
    offset: int = Field(0, ge=0, le=2**31, description="how many of the newest to skip")
    since: QueryTime | None = Field(
        None, description="only checks at or after this time (ISO 8601 with a zone)"
    )
    until: QueryTime | None = Field(
        None, description="only checks before this time (ISO 8601 with a zone)"
    )


async def list_checks(call: Call[NoBody, CheckQuery]) -> Response:
    """The device's checks, newest first, a page at a time (``limit``, ``offset``), in a
    time range when ``since`` / ``until`` are given."""
    q = call.query
    if q.since is not None and q.until is not None and q.until <= q.since:
        raise RequestInvalid.field(["query", "until"], "must be later than since", "greater_than")
    async with session_factory(services_of(call.request).engine)() as session:
        device = await device_or_404(session, call.path["device_id"])
        assert device.id is not None
        rows = await repo.list_checks(
            session, device.id, limit=q.limit, offset=q.offset, since=q.since, until=q.until
        )
    return respond([CheckRead.model_validate(row) for row in rows])


async def create_check(call: Call[CheckCreate, NoQuery]) -> Response:
    """Record a result by hand (``source: entered``); announced as ``check.created``."""
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
        run_key=f"entered:{uuid.uuid4().hex}",
        source="entered",
        result=result,
        checked_at=body.checked_at or utcnow(),
    )
    # The device lookup and the insert are one statement: a device deleted meanwhile
    # is a 404, never a check without its device.
    health = services.health
    stored = await repo.insert_device_check(services.engine, row, [health.after_insert])
    if stored is None:
        raise ApiError(404, f"device {device_id} not found")
    check = CheckRead.model_validate(stored)
    log.info("entered check device=%d up=%s", device_id, body.status_up)
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
