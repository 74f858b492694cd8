"""Gatus's condition language, evaluated on a probe's :class:`Facts` with no I/O.

A condition is ``LEFT OPERATOR RIGHT``; a device's conditions must all hold::

    [STATUS] == 200                  [RESPONSE_TIME] < 800
    [BODY].data[0].status == UP      [BODY][0].id == any(1, 2)
    len([BODY].items) > 0            has([BODY].errors) == false
    [BODY] == pat(*"ok"*)            [STATUS] == any(200, 204)
    [CERTIFICATE_EXPIRATION] > 30d   [DNS_RCODE] == NOERROR

    >>> evaluate(["[STATUS] < 500"], Facts(status=503))
    [Verdict(condition='[STATUS] < 500', success=False, actual='503')]
    >>> parse_condition("[STATU] == 200")
    Traceback (most recent call last):
    jobs.probe.syntax.ConditionError: unknown placeholder [STATU] at 0

The rules are Gatus's, with these differences, each stricter or clearer:

- The left-hand side is a placeholder (maybe in ``len()``/``has()``); ``pat()`` and
  ``any()`` only go on the right, and only with ``==``/``!=``.
- ``==``/``!=`` compare numbers as numbers when both sides are numbers (``1 == 1.0``),
  anything else as exact text; ``any(a, b)`` holds if the left equals one of its values.
  ``pat()`` is a glob (``*``, ``?``, ``[ab]``) matched against the whole left value.
- ``<``, ``<=``, ``>``, ``>=`` need numbers or durations (``72h``, ``1h30m``, ``500ms``,
  ``30d``), durations counting as milliseconds; [RESPONSE_TIME] and
  [CERTIFICATE_EXPIRATION] are milliseconds. Gatus reads a non-number as 0 and truncates
  decimals; here a non-number fails the condition and ``1.5 > 1`` holds.
- A value the check does not have ([STATUS] of a tcp check, a JSON path not in the body,
  a body that is not JSON) fails the condition whatever the operator (Gatus lets ``!=``
  pass), with ``actual`` saying ``n/a`` and why. Only ``has()`` asks whether it is there.
- Literals are checked when parsed: ``[STATUS] == OK``, ``[CONNECTED] == yes``,
  ``[MSG_STATUS] == ok`` and ``[DNS_RCODE] == NOERR`` are refused with the reason.
- Placeholder names are case-insensitive (``[status]``); JSON keys are not.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from jobs.probe.facts import Facts
from jobs.probe.placeholders import Kind, Missing, Reading, Ref
from jobs.probe.placeholders import millis as _millis
from jobs.probe.placeholders import number as _number
from jobs.probe.syntax import (
    AnyOf,
    Condition,
    ConditionError,
    Pattern,
    parse_condition,
    parse_conditions,
)

__all__ = [
    "Condition",
    "ConditionError",
    "Judgement",
    "Outcome",
    "Verdict",
    "default_conditions",
    "evaluate",
    "judge",
    "outcome",
    "parse_condition",
    "parse_conditions",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One condition's result, stored as ``{"condition", "success", "actual"}``."""

    condition: str
    success: bool
    actual: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "success": self.success, "actual": self.actual}


def _evaluate(condition: Condition, reading: Reading) -> Verdict:
    try:
        left, shown = reading.resolve(condition.left)
    except Missing as missing:
        return Verdict(condition.text, False, missing.why)
    try:
        success = _holds(condition, left, reading)
    except Missing:  # the right-hand placeholder has no value
        success = False
    return Verdict(condition.text, success, shown)


def _holds(condition: Condition, left: str, reading: Reading) -> bool:
    right, op, kind = condition.right, condition.operator, condition.left.kind
    if isinstance(right, Pattern):
        return fnmatchcase(left, right.glob) == (op == "==")
    if isinstance(right, AnyOf):
        return any(_equal(left, option, kind) for option in right.options) == (op == "==")
    other = reading.resolve(right)[0] if isinstance(right, Ref) else right
    if op in ("==", "!="):
        return _equal(left, other, kind) == (op == "==")
    a, b = _millis(left), _millis(other)
    if a is None or b is None:
        return False
    return _COMPARE[op](a, b)


_COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _equal(left: str, right: str, kind: Kind) -> bool:
    a, b = (
        (_millis(left), _millis(right)) if kind is Kind.MILLIS else (_number(left), _number(right))
    )
    return a == b if a is not None and b is not None else left == right


def evaluate(conditions: Iterable[str | Condition], facts: Facts) -> list[Verdict]:
    """Every condition's verdict on one result; never raises.

    A stored condition that no longer parses fails, its ``actual`` saying why.

    >>> evaluate(["[CONNECTED] == true", "[RESPONSE_TIME] < 1s"], Facts(connected=True))
    [Verdict(condition='[CONNECTED] == true', success=True, actual='true'), \
Verdict(condition='[RESPONSE_TIME] < 1s', success=False, actual='n/a')]
    """
    return _verdicts(conditions, Reading(facts))


def _verdicts(conditions: Iterable[str | Condition], reading: Reading) -> list[Verdict]:
    verdicts = []
    for condition in conditions:
        try:
            parsed = parse_condition(condition) if isinstance(condition, str) else condition
        except ConditionError as error:
            verdicts.append(Verdict(str(condition), False, f"invalid condition: {error}"))
            continue
        verdicts.append(_evaluate(parsed, reading))
    return verdicts


class Outcome(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def status_up(self) -> bool:
        """The seed's ``status_up``: true for up and degraded."""
        return self is not Outcome.DOWN


def outcome(verdicts: Iterable[Verdict], degraded: Iterable[Verdict] = ()) -> Outcome:
    """Down if any condition failed; degraded if all held and a ``degraded_when`` did."""
    if not all(v.success for v in verdicts):
        return Outcome.DOWN
    return Outcome.DEGRADED if any(v.success for v in degraded) else Outcome.UP


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: Outcome
    verdicts: list[Verdict]
    degraded_verdicts: list[Verdict]


def judge(
    facts: Facts,
    conditions: Sequence[str | Condition],
    degraded_when: Sequence[str | Condition] = (),
) -> Judgement:
    """A result's outcome and verdicts: what the probe stores (``conditions`` already
    defaulted with :func:`default_conditions` when the device has none)."""
    reading = Reading(facts)  # one for both lists: the body is parsed as JSON once
    verdicts, degraded = _verdicts(conditions, reading), _verdicts(degraded_when, reading)
    return Judgement(outcome(verdicts, degraded), verdicts, degraded)


_DEFAULTS = {
    "http": ("[STATUS] < 500",),
    "https": ("[STATUS] < 500",),
    "tcp": ("[CONNECTED] == true",),
    "tls": ("[CONNECTED] == true",),
    "dns": ("[DNS_RCODE] == NOERROR",),
    "recorder": ("[MSG_STATUS] == success",),
}


def default_conditions(kind: str) -> tuple[str, ...]:
    """The conditions of a device that has none, by check kind (its address's scheme)."""
    try:
        return _DEFAULTS[kind]
    except KeyError:
        raise ValueError(f"no check kind {kind!r} (one of {', '.join(_DEFAULTS)})") from None


# What each scheme's check fills (docs/check-kinds.md): a condition reading another
# placeholder could never hold, so the API refuses it when the device is saved.
_COMMON = frozenset({"CONNECTED", "RESPONSE_TIME"})
_FILLED = {
    "http": _COMMON | {"STATUS", "BODY"},
    "https": _COMMON | {"STATUS", "BODY", "CERTIFICATE_EXPIRATION"},
    "tcp": _COMMON,
    "tls": _COMMON | {"CERTIFICATE_EXPIRATION"},
    "dns": _COMMON | {"DNS_RCODE", "BODY"},
    "recorder": _COMMON | {"MSG_STATUS", "APP_STATUS", "BODY"},
}


def foreign_placeholders(scheme: str, condition: Condition) -> list[str]:
    """The placeholders of ``condition`` that a ``scheme`` check never fills, sorted.

    >>> foreign_placeholders("http", parse_condition("[DNS_RCODE] == NOERROR"))
    ['DNS_RCODE']
    >>> foreign_placeholders("https", parse_condition("[CERTIFICATE_EXPIRATION] > 72h"))
    []
    """
    return sorted(condition.placeholders - _FILLED[scheme])
