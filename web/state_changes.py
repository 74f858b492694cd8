"""``/devices/{id}/state-changes`` and ``/devices/{id}/incidents``: a device's state
history, read from the ``state_changes`` rows (an incident is derived: a change to
``down`` until the next change away from it)."""

from __future__ import annotations

from pydantic import Field
from starlette.responses import Response

from storage import health as store
from storage.db import session_factory
from storage.types import utcnow
from web.devices import NOT_FOUND, device_or_404
from web.endpoints import AnyEndpoint, Call, Endpoint, NoBody, QueryModel, Reply, respond
from web.schemas import QueryTime
from web.services import services_of
from web.state_schemas import IncidentRead, StateChangeRead


class StateChangeQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000, description="how many, newest first")
    before: QueryTime | None = Field(
        None, description="only changes dated before this (the last page's oldest `at`)"
    )


class IncidentQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000, description="how many, newest first")
    before: QueryTime | None = Field(
        None,
        description="only incidents that started before this (the last page's oldest `started_at`)",
    )


async def list_state_changes(call: Call[NoBody, StateChangeQuery]) -> Response:
    """The device's state changes, newest first; ``before`` pages back."""
    engine = services_of(call.request).engine
    async with session_factory(engine)() as session:
        await device_or_404(session, call.path["device_id"])
    async with engine.connect() as conn:
        rows = await store.list_changes(
            conn, call.path["device_id"], limit=call.query.limit, before=call.query.before
        )
    return respond([StateChangeRead.model_validate(row, from_attributes=True) for row in rows])


async def list_incidents(call: Call[NoBody, IncidentQuery]) -> Response:
    """The device's down periods, newest first; an open one has ``ended_at`` null;
    ``before`` pages back."""
    engine = services_of(call.request).engine
    async with session_factory(engine)() as session:
        await device_or_404(session, call.path["device_id"])
    async with engine.connect() as conn:
        edges = await store.list_down_edges(
            conn, call.path["device_id"], limit=call.query.limit, before=call.query.before
        )
    incidents = store.incidents_of(edges, utcnow())
    return respond(
        [
            IncidentRead(
                started_at=i.started_at,
                ended_at=i.ended_at,
                cause=i.cause,
                duration_seconds=i.duration_seconds,
            )
            for i in incidents
        ]
    )


_TAGS = ("state",)

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "GET",
        "/devices/{device_id:int}/state-changes",
        list_state_changes,
        query=StateChangeQuery,
        tags=_TAGS,
        summary="A device's state changes",
        responses={200: Reply("Changes, newest first", list[StateChangeRead]), 404: NOT_FOUND},
    ),
    Endpoint(
        "GET",
        "/devices/{device_id:int}/incidents",
        list_incidents,
        query=IncidentQuery,
        tags=_TAGS,
        summary="A device's incidents (down periods)",
        responses={200: Reply("Incidents, newest first", list[IncidentRead]), 404: NOT_FOUND},
    ),
]
