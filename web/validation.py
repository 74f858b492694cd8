"""``POST /devices/validate``: try a device's check now, in this process, and store nothing.

The "test this check" button: the body is a ``POST /devices`` body, refused with the same
422s; the probe runs here (no queue, no worker), bounded by the device's timeout, and the
answer is the result with every condition's verdict.  Nothing is written and nothing is
announced.  ``?device_id=N`` tests an edit of a stored device: a header sent as ``***``
(what the API shows of it) is sent as stored.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from starlette.responses import Response

from core.secrets import keep_masked
from jobs.probe.check import run_check
from jobs.probe.job import ProbeJob, check_settings
from storage.db import session_factory
from web.devices import NOT_FOUND, check_device, check_timeout, device_or_404
from web.endpoints import AnyEndpoint, Call, Endpoint, QueryModel, Reply, respond
from web.schemas import DeviceCreate, Outcome, VerdictRead
from web.services import services_of

log = logging.getLogger(__name__)

_OUTCOMES: dict[str, Outcome] = {"up": "up", "degraded": "degraded", "down": "down"}


class ValidationResult(BaseModel):
    """What one check of the device found now (not stored)."""

    outcome: Outcome
    status_up: bool = Field(description="true for up and degraded")
    latency_ms: float | None
    status_code: int | None
    error_kind: str | None
    error: str | None
    verdicts: list[VerdictRead]
    degraded_verdicts: list[VerdictRead]
    certificate_expires_at: datetime | None
    certificate_subject: str | None = Field(
        None, description="https:// and tls://: the peer certificate's subject (RFC 4514)"
    )


class ValidateQuery(QueryModel):
    device_id: int | None = Field(
        None, ge=1, description='the stored device being edited: its "***" headers are used'
    )


async def validate_device(call: Call[DeviceCreate, ValidateQuery]) -> Response:
    """Run the device's check once now and answer its verdicts; nothing is stored."""
    services = services_of(call.request)
    settings = services.settings
    body = call.body
    if call.query.device_id is not None and body.headers:
        async with session_factory(services.engine)() as session:
            stored = await device_or_404(session, call.query.device_id)
        body = body.model_copy(update={"headers": keep_masked(body.headers, stored.headers)})
    check_timeout(services, body.timeout_seconds)
    fields = body.model_dump()
    check_device(settings, fields, fields)
    timeout = min(
        body.timeout_seconds or settings.probe_timeout_seconds, settings.probe_max_timeout_seconds
    )
    job = ProbeJob(
        device_id=0,
        address=body.address,
        timeout=timeout,
        run_key=f"validate:{uuid.uuid4().hex}",
        source="manual",
        **check_settings(body).job_fields(),
    )
    result = await run_check(job, services.tools(), timeout)
    log.info(
        "device validated address=%s outcome=%s error_kind=%s",
        body.address,
        result.outcome,
        result.error_kind,
    )
    return respond(
        ValidationResult(
            outcome=_OUTCOMES.get(result.outcome or "", "up" if result.status_up else "down"),
            status_up=result.status_up,
            latency_ms=result.latency_ms,
            status_code=result.status_code,
            error_kind=None if result.error_kind is None else str(result.error_kind),
            error=result.error,
            verdicts=[VerdictRead(**v) for v in result.verdicts or ()],
            degraded_verdicts=[VerdictRead(**v) for v in result.degraded_verdicts or ()],
            certificate_expires_at=result.certificate_expires_at,
            certificate_subject=result.certificate_subject,
        )
    )


ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "POST",
        "/devices/validate",
        validate_device,
        body=DeviceCreate,
        query=ValidateQuery,
        tags=("devices",),
        summary="Try a device's check now (stores nothing)",
        responses={
            200: Reply("The check's result and verdicts", ValidationResult),
            404: NOT_FOUND,
        },
    ),
]
