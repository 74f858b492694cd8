"""How a check that could not complete becomes :class:`Facts`: a failed check is data.

Every kind measures from one ``started = time.perf_counter()`` and, on failure, records
the time spent, the kind of failure (:class:`ErrorKind`, as the HTTP probe does) and a
one-line text.
"""

from __future__ import annotations

import time

from jobs.probe.facts import Facts

# The HTTP probe's failure vocabulary, shared so stored results read the same whatever the
# kind.
from jobs.probe.run import ERROR_TEXT_MAX, ErrorKind, describe_error

__all__ = ["ERROR_TEXT_MAX", "ErrorKind", "elapsed_ms", "failed", "from_exception", "timed_out"]


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def failed(kind: str, text: str, started: float) -> Facts:
    """Facts of a check that failed with ``kind`` (``dataclasses.replace`` adds the rest)."""
    return Facts(
        response_time_ms=elapsed_ms(started),
        error_kind=kind,
        error=" ".join(text.split())[:ERROR_TEXT_MAX],
    )


def from_exception(exc: BaseException, started: float) -> Facts:
    """A transport failure (refused, DNS, TLS, ...) classified as the HTTP probe does."""
    kind, text = describe_error(exc)
    return failed(kind.value, text, started)


def timed_out(timeout: float, started: float, what: str = "no answer") -> Facts:
    return failed(ErrorKind.TIMEOUT.value, f"timeout: {what} within {timeout:g}s", started)
