"""What a probe found out, whatever its kind: the values conditions are evaluated on.

Every check kind (``http(s)://``, ``tcp://``, ``tls://``, ``dns://``, ``recorder://``)
fills one :class:`Facts`; the condition language (``jobs/probe/conditions.py``) reads
its placeholders from it and nothing else, so evaluating a condition needs no I/O.
A field left ``None`` is a placeholder this kind of check does not have: a condition
that names it fails, saying so, rather than raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Facts:
    """One probe's observations, keyed by the placeholder that reads each."""

    # [RESPONSE_TIME], milliseconds from the start of the check to its answer.
    response_time_ms: float | None = None
    # [CONNECTED]: a connection (TCP, TLS, HTTP) or a reply (DNS, recorder) was had.
    connected: bool = False
    # [STATUS]: the HTTP status code.
    status: int | None = None
    # [BODY]: the HTTP body (text, capped), the DNS answers (one per line), or the
    # recorder's reply (JSON text); [BODY].a.b[0] reads a path into it as JSON.
    body: str | None = None
    # [CERTIFICATE_EXPIRATION]: time left on the peer's certificate when it was checked.
    certificate_expiration: timedelta | None = None
    certificate_expires_at: datetime | None = None
    certificate_subject: str | None = None
    # [DNS_RCODE]: NOERROR, NXDOMAIN, SERVFAIL, ...
    dns_rcode: str | None = None
    # [APP_STATUS] / [MSG_STATUS]: the recorder's reply (started|stopped|error, success|error).
    app_status: str | None = None
    msg_status: str | None = None
    # Why the check could not complete (transport errors are data, not exceptions).
    error_kind: str | None = None
    error: str | None = None
