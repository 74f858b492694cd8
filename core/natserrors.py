"""Error messages that say what did not answer, where, and for how long it was tried.

``TimeoutError()`` has no text: a 503 that only repeats it says nothing
(``"the job queue did not accept the jobs: "``).  Example::

    >>> from core.settings import Settings
    >>> print(queue_refusal(Settings(NATS_URL="nats://u:p@h:4222"), TimeoutError(), 5.04))
    ... # doctest: +NORMALIZE_WHITESPACE
    the job queue did not accept the jobs: NATS JetStream at nats://***@h:4222
    (stream FLEETPROBE_JOBS, subject fleetprobe.jobs) did not acknowledge them within
    5.0s (TimeoutError: no PubAck arrived)
"""

from __future__ import annotations

from nats import errors as nats_errors
from nats.js import errors as js_errors

from core.natsurl import redact
from core.settings import Settings

_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (js_errors.NoStreamResponseError, "no stream takes the subject"),
    (nats_errors.NoRespondersError, "no stream takes the subject"),
    (nats_errors.ConnectionReconnectingError, "the connection is reconnecting"),
    (nats_errors.ConnectionClosedError, "the connection is closed"),
    (nats_errors.OutboundBufferLimitError, "the connection is down and its buffer full"),
    (TimeoutError, "no PubAck arrived"),
)


def describe_error(exc: BaseException) -> str:
    """``TypeName: text``, with a hint where the type says more than its empty text."""
    text = str(exc).strip()
    hint = next((h for kind, h in _HINTS if isinstance(exc, kind)), None)
    parts = [type(exc).__name__]
    if text and text != hint:
        parts.append(text)
    if hint:
        parts.append(hint)
    return parts[0] + (": " + "; ".join(parts[1:]) if len(parts) > 1 else "")


def queue_refusal(settings: Settings, exc: BaseException, elapsed: float) -> str:
    """Why the job queue refused a kick: the servers, the stream, how long, the error."""
    return (
        f"the job queue did not accept the jobs: NATS JetStream at "
        f"{redact(settings.nats_url)} (stream {settings.jobs_stream}, subject "
        f"{settings.jobs_subject}) did not acknowledge them within {elapsed:.1f}s "
        f"({describe_error(exc)})"
    )
