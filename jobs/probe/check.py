"""One check of one device, whatever its kind: the address chooses the probe, the probe
fills :class:`Facts`, the conditions judge them.  A failed check is data.

::

    http(s)://  jobs.probe.run (the shared HTTP client) + the certificate (certificates.py)
    tcp://      jobs.probe.kinds.tcp        tls://  jobs.probe.kinds.tls
    dns://      jobs.probe.kinds.dns        recorder://  CheckTools.recorder (injected:
                                            the recorder sits above probe in the layers)

:func:`run_check` is what the probe task runs, and what ``POST /devices/validate`` runs
in the web process (nothing stored).  Its :class:`ProbeResult` carries the outcome, the
verdicts and the certificate's expiry, ready for :func:`jobs.probe.row.check_row`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx

from core.settings import Settings
from jobs.probe.certificates import CertificateCache
from jobs.probe.conditions import Judgement, Outcome, Verdict, default_conditions, judge
from jobs.probe.facts import Facts
from jobs.probe.http import make_http_client
from jobs.probe.job import ProbeJob
from jobs.probe.kinds.address import (
    AddressError,
    DnsTarget,
    HttpTarget,
    RecorderTarget,
    Target,
    TcpTarget,
    TlsTarget,
    parse_address,
)
from jobs.probe.kinds.dns import probe_dns
from jobs.probe.kinds.failure import ERROR_TEXT_MAX, ErrorKind
from jobs.probe.kinds.tcp import probe_tcp
from jobs.probe.kinds.tls import certificate_facts, probe_tls
from jobs.probe.run import PLAIN_GET, HttpRequest, ProbeResult, run_probe
from jobs.probe.syntax import ConditionError, parse_condition

log = logging.getLogger(__name__)

# The least time a certificate handshake gets after a slow HTTP answer.
CERTIFICATE_MIN_TIMEOUT = 0.5
# The recorder:// check (jobs.recorder.check.probe_recorder bound to a client).
RecorderCheck = Callable[[RecorderTarget, float], Awaitable[Facts]]


class CheckTools:
    """What checks share in one process: the HTTP client (a second one, made when first
    needed, for devices with ``verify_tls`` off), the certificate cache, and the recorder
    check when this process has a recorder client."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        recorder: RecorderCheck | None = None,
        certificates: CertificateCache | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.recorder = recorder
        self.certificates = certificates if certificates is not None else CertificateCache()
        self.body_max_bytes = settings.probe_body_max_bytes
        self._insecure: httpx.AsyncClient | None = None

    def client(self, verify: bool) -> httpx.AsyncClient:
        if verify:
            return self.http
        if self._insecure is None:
            self._insecure = make_http_client(self.settings, verify=False)
        return self._insecure

    async def aclose(self) -> None:
        """Close what this object made (the shared client belongs to its owner)."""
        if self._insecure is not None:
            await self._insecure.aclose()
            self._insecure = None


async def run_check(job: ProbeJob, tools: CheckTools, timeout: float) -> ProbeResult:
    """Probe ``job``'s device as its address says, within ``timeout`` seconds, and judge
    the facts by its conditions (the kind's defaults when it has none)."""
    try:
        target = parse_address(job.address)
    except AddressError as exc:  # stored before addresses were parsed, or sent by hand
        facts = Facts(error_kind=ErrorKind.INVALID_URL.value, error=str(exc)[:ERROR_TEXT_MAX])
        return judged(facts, job, "http", None)
    if isinstance(target, HttpTarget):
        return await _http(job, target, tools, timeout)
    return judged(await _probe(target, job, tools, timeout), job, target.kind, None)


async def _probe(target: Target, job: ProbeJob, tools: CheckTools, timeout: float) -> Facts:
    if isinstance(target, TcpTarget):
        return await probe_tcp(target, timeout=timeout)
    if isinstance(target, TlsTarget):
        return await probe_tls(target, timeout=timeout, verify_tls=job.verify_tls)
    if isinstance(target, DnsTarget):
        return await probe_dns(target, timeout=timeout)
    assert isinstance(target, RecorderTarget)
    if tools.recorder is None:
        return Facts(
            error_kind=ErrorKind.CONNECTION.value,
            error="recorder checks cannot run in this process (no recorder client)",
        )
    return await tools.recorder(target, timeout)


def http_request(job: ProbeJob) -> HttpRequest:
    """The request a job sends; the shared plain GET when it sets nothing."""
    if job.method is None and job.headers is None and job.body is None and job.follow_redirects:
        return PLAIN_GET
    return HttpRequest(
        method=job.method or "GET",
        headers=job.headers,
        body=job.body,
        follow_redirects=job.follow_redirects,
    )


async def _http(
    job: ProbeJob, target: HttpTarget, tools: CheckTools, timeout: float
) -> ProbeResult:
    client = tools.client(job.verify_tls)
    result = await run_probe(
        client,
        job.address,
        timeout,
        body_max_bytes=tools.body_max_bytes,
        request=http_request(job),
    )
    expires_at: datetime | None = None
    subject: str | None = None
    expiration: timedelta | None = None  # [CERTIFICATE_EXPIRATION]
    if target.tls:
        now = datetime.now(UTC)
        if result.peer_certificate is not None:
            try:
                seen = certificate_facts(result.peer_certificate, now)
                expires_at, subject = seen.certificate_expires_at, seen.certificate_subject
            except ValueError:
                expires_at = None
        else:
            # what is left of the check's time (a cached certificate costs nothing)
            left = max(timeout - (result.latency_ms or 0) / 1000, CERTIFICATE_MIN_TIMEOUT)
            cached = await tools.certificates.certificate(target, timeout=left)
            if cached is not None:
                expires_at, subject = cached.expires_at, cached.subject
        expiration = None if expires_at is None else expires_at - now
    facts = Facts(
        response_time_ms=result.latency_ms,
        connected=result.status_code is not None,
        status=result.status_code,
        body=_text(result.body_excerpt) if _reads_body(job) else None,
        certificate_expires_at=expires_at,
        certificate_expiration=expiration,
        certificate_subject=subject,
        # a status judged by the conditions is not itself a failure
        error_kind=None if result.status_code is not None else _kind(result.error_kind),
        error=None if result.status_code is not None else result.error,
    )
    return judged(facts, job, "http", result.status_code)


def _kind(kind: ErrorKind | str | None) -> str | None:
    return None if kind is None else str(kind)


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _reads_body(job: ProbeJob) -> bool:
    """Decoding a body nobody reads costs on every result: only when a condition does."""
    for text in (*(job.conditions or ()), *(job.degraded_when or ())):
        try:
            if "BODY" in parse_condition(text).placeholders:
                return True
        except ConditionError:
            continue
    return False


def judged(facts: Facts, job: ProbeJob, kind: str, status_code: int | None) -> ProbeResult:
    """The result of ``facts`` judged by the job's conditions."""
    conditions: Sequence[str] = (
        job.conditions if job.conditions is not None else default_conditions(kind)
    )
    judgement = judge(facts, conditions, job.degraded_when or ())
    error_kind, error = facts.error_kind, facts.error
    if judgement.outcome is Outcome.DOWN and error_kind is None:
        error_kind, error = _failure(judgement, status_code)
    return ProbeResult(
        status_up=judgement.outcome.status_up,
        latency_ms=facts.response_time_ms,
        status_code=status_code,
        error_kind=error_kind,
        error=error,
        outcome=judgement.outcome.value,
        verdicts=[v.as_dict() for v in judgement.verdicts],
        degraded_verdicts=[v.as_dict() for v in judgement.degraded_verdicts],
        certificate_expires_at=facts.certificate_expires_at,
        certificate_subject=facts.certificate_subject,
    )


def _failure(judgement: Judgement, status_code: int | None) -> tuple[str, str]:
    """Why a completed check is down: ``http_status`` when a failing condition reads the
    status (``HTTP 503`` as before conditions), else ``condition``; the failed ones."""
    failed = [v for v in judgement.verdicts if not v.success]
    text = "; ".join(_shown(v) for v in failed)
    on_status = any(_reads_status(v) for v in failed)
    if on_status and status_code is not None:
        return ErrorKind.HTTP_STATUS.value, f"HTTP {status_code}: {text}"[:ERROR_TEXT_MAX]
    return ErrorKind.CONDITION.value, f"failed: {text}"[:ERROR_TEXT_MAX]


def _shown(verdict: Verdict) -> str:
    return f"{verdict.condition} (actual {verdict.actual})"


def _reads_status(verdict: Verdict) -> bool:
    try:
        return "STATUS" in parse_condition(verdict.condition).placeholders
    except ConditionError:
        return False
