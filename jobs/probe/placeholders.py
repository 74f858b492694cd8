"""The placeholders of the condition language and how each is read from :class:`Facts`.

Everything a condition reads is text first (as in Gatus): ``[STATUS]`` reads ``"503"``,
``[CONNECTED]`` ``"true"``, ``[BODY].a[0]`` walks a path into the body as JSON. The
helpers here say when a text is a number or a duration and render values back as text::

    >>> Reading(Facts(body='{"a": [{"b": 1.0}]}')).resolve(Ref("BODY", ("a", 0, "b")))
    ('1', '1')
    >>> duration_ms("1h30m"), duration_ms("30d"), duration_ms("500"), duration_ms("abc")
    (Decimal('5400000'), Decimal('2592000000'), None, None)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from jobs.probe.facts import Facts


class Kind(Enum):
    """What a placeholder reads, which decides the literals and operators it accepts."""

    NUMBER = "a number"
    MILLIS = "a number of milliseconds or a duration"
    BOOL = "true or false"
    TEXT = "text"
    ANY = "any value"


PLACEHOLDERS = {
    "STATUS": Kind.NUMBER,
    "RESPONSE_TIME": Kind.MILLIS,
    "BODY": Kind.ANY,
    "CONNECTED": Kind.BOOL,
    "CERTIFICATE_EXPIRATION": Kind.MILLIS,
    "DNS_RCODE": Kind.TEXT,
    "APP_STATUS": Kind.TEXT,
    "MSG_STATUS": Kind.TEXT,
}
_RCODES = """NOERROR FORMERR SERVFAIL NXDOMAIN NOTIMP REFUSED YXDOMAIN YXRRSET NXRRSET NOTAUTH
    NOTZONE BADVERS BADSIG BADKEY BADTIME BADMODE BADNAME BADALG BADTRUNC BADCOOKIE"""
# What the check kinds can put there (the recorder's reply; the DNS rcodes of RFC 6895).
CHOICES = {
    "APP_STATUS": ("started", "stopped", "error"),
    "MSG_STATUS": ("success", "error"),
    "DNS_RCODE": tuple(_RCODES.split()),
}
_EXCERPT = 100

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Go's time.ParseDuration units, plus d (24h) which operators write for certificates.
_UNIT_MS = {
    "ns": Decimal("0.000001"),
    "us": Decimal("0.001"),
    "µs": Decimal("0.001"),
    "μs": Decimal("0.001"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
    "d": Decimal(86_400_000),
}
_PART = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d)"
_DURATION = re.compile(rf"([+-]?)((?:{_PART})+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


@dataclass(frozen=True, slots=True)
class Ref:
    """A placeholder, with a JSON path for [BODY] and maybe wrapped in len()/has()."""

    name: str
    path: tuple[str | int, ...] = ()
    func: str | None = None

    @property
    def kind(self) -> Kind:
        if self.func:
            return Kind.NUMBER if self.func == "len" else Kind.BOOL
        return Kind.ANY if self.path else PLACEHOLDERS[self.name]

    def __str__(self) -> str:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{self.func}([{self.name}]{path})" if self.func else f"[{self.name}]{path}"


class Missing(Exception):
    """A value the check does not have (the condition fails, saying why in ``actual``)."""

    def __init__(self, why: str = "n/a") -> None:
        super().__init__(why)
        self.why = why


def number(text: str) -> Decimal | None:
    """``text`` as an exact decimal number, or None (``nan``/``inf`` are not numbers)."""
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def duration_ms(text: str) -> Decimal | None:
    """A Go-style duration (``72h``, ``1h30m``, ``1.5s``, ``-5m``; also ``30d``) in ms."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    total = sum((Decimal(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(match[2])), Decimal(0))
    return -total if match[1] == "-" else total


def millis(text: str) -> Decimal | None:
    """A number (milliseconds where it is a time) or a duration converted to milliseconds."""
    value = number(text)
    return value if value is not None else duration_ms(text)


def format_duration(ms: int) -> str:
    """Milliseconds as Gatus shows them: ``72h``, ``1h30m``, ``1h0m15s``, ``45s``."""
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    total = ms // 1000
    if total == 0:
        return f"{sign}{ms}ms" if ms else "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if seconds:
        tail = f"{minutes}m{seconds}s" if hours or minutes else f"{seconds}s"
    else:
        tail = f"{minutes}m" if minutes else ""
    return sign + (f"{hours}h" if hours else "") + tail


def _parse_json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Missing("n/a (the body is not JSON)") from None


def _walk(document: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` (keys and list indexes); a JSON null counts as absent (Gatus)."""
    value = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise Missing(f"n/a (no item [{step}] in the body)")
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                raise Missing(f"n/a (no key {step!r} in the body)")
            value = value[step]
        if value is None:
            raise Missing("n/a (null in the body)")
    return value


def _json_text(value: Any) -> str:
    """A JSON value as conditions see it: strings as they are, ``true``, ``1`` (not ``1.0``,
    as Gatus's float64 prints it), objects and lists as minified JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_len(value: Any) -> int:
    """Gatus's len(): the items of a list, else the characters of the value's text."""
    return len(value) if isinstance(value, list) else len(_json_text(value))


class Reading:
    """One result's values as conditions read them (the body parsed as JSON at most once)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self._document: Any = _UNREAD

    def resolve(self, ref: Ref) -> tuple[str, str]:
        """``(text compared, text shown)``; raises :class:`Missing` when there is none."""
        if ref.func == "has":  # a path that is there; a value that is not empty (Gatus)
            try:
                there = bool(self.resolve(Ref(ref.name, ref.path))[0] or ref.path)
            except Missing:
                there = False
            return ("true", "true") if there else ("false", "false")
        text = self._raw(ref.name)
        value = _walk(self._json(), ref.path) if ref.path else text
        if ref.func == "len":
            size = _json_len(value) if ref.path else self._length(ref.name, text)
            return str(size), str(size)
        text = _json_text(value)
        if ref.name == "CERTIFICATE_EXPIRATION":
            return text, format_duration(int(text))
        return text, text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"

    def _length(self, name: str, text: str) -> int:
        # len([BODY]) counts the items of a JSON array body, else characters (Gatus).
        if name == "BODY" and text.startswith("["):
            try:
                document = self._json()
            except Missing:
                return len(text)
            if isinstance(document, list):
                return len(document)
        return len(text)

    def _json(self) -> Any:
        if self._document is _UNREAD:
            try:
                self._document = _parse_json(self.facts.body or "")
            except Missing as missing:
                self._document = missing
        if isinstance(self._document, Missing):
            raise Missing(self._document.why)
        return self._document

    def _raw(self, name: str) -> str:
        f = self.facts
        match name:
            case "STATUS":
                value: object = f.status
            case "RESPONSE_TIME":
                value = None if f.response_time_ms is None else int(f.response_time_ms)
            case "BODY":
                value = None if f.body is None else f.body.strip()
            case "CONNECTED":
                value = "true" if f.connected else "false"
            case "CERTIFICATE_EXPIRATION":
                expiry = f.certificate_expiration
                value = None if expiry is None else expiry // timedelta(milliseconds=1)
            case "DNS_RCODE":
                value = f.dns_rcode
            case "APP_STATUS":
                value = f.app_status
            case _:
                value = f.msg_status
        if value is None:
            raise Missing()
        return str(value)


_UNREAD = object()
