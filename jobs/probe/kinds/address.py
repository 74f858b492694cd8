"""A device address parsed into the target of its check kind; pure, no I/O.

The scheme chooses the kind::

    >>> parse_address("tcp://db.local:5432")
    TcpTarget(host='db.local', port=5432)
    >>> parse_address("dns://example.com?type=mx&server=127.0.0.1:5353")
    DnsTarget(name='example.com', record_type='MX', server='127.0.0.1', server_port=5353)
    >>> kind_of("https://example.com/health"), kind_of("recorder://task01")
    ('http', 'recorder')
    >>> try:
    ...     parse_address("ftp://x")
    ... except AddressError as exc:
    ...     print(exc)
    address: scheme ftp is not supported; use http, https, tcp, tls, dns or recorder

:class:`AddressError` is a ``ValueError``, so a pydantic validator that calls
:func:`parse_address` turns it into a 422 naming the ``address`` field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, unquote

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from jobs.probe.kinds.hosts import (
    HostError,
    ascii_host,
    split_host_port,
    valid_dns_name,
    valid_host,
)

Kind = Literal["http", "tcp", "tls", "dns", "recorder"]
SCHEMES = ("http", "https", "tcp", "tls", "dns", "recorder")
ADDRESS_MAX = 2048  # the devices table's column
# Record types a dns:// check may ask for (dnspython knows more; these have a use here).
RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
DNS_PORT = 53
# The recorder wire format's task id bound (jobs.recorder.wire.TASK_ID_MAX, which this layer
# cannot import; tests/jobs/probe/kinds/test_address.py holds the two equal).
RECORDER_TASK_ID_MAX = 128

_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


class AddressError(ValueError):
    """An address no check kind accepts; the message says what would be accepted."""


@dataclass(frozen=True, slots=True)
class HttpTarget:
    kind: ClassVar[Kind] = "http"
    url: str  # as the user wrote it (httpx parses it again when probing)
    host: str
    port: int  # 80 / 443 when the URL names none
    tls: bool  # https: the certificate's expiry can be recorded


@dataclass(frozen=True, slots=True)
class TcpTarget:
    kind: ClassVar[Kind] = "tcp"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TlsTarget:
    kind: ClassVar[Kind] = "tls"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class DnsTarget:
    kind: ClassVar[Kind] = "dns"
    name: str
    record_type: str = "A"
    server: str | None = None  # an IP address; None: the system's resolver
    server_port: int = DNS_PORT


@dataclass(frozen=True, slots=True)
class RecorderTarget:
    kind: ClassVar[Kind] = "recorder"
    task_id: str


Target = HttpTarget | TcpTarget | TlsTarget | DnsTarget | RecorderTarget


def kind_of(address: str) -> Kind:
    """The check kind of ``address`` (``http`` for https too); raises :class:`AddressError`."""
    return parse_address(address).kind


def scheme_of(target: Target) -> str:
    """The scheme a target was written with, lower case (``https`` apart from ``http``)."""
    if isinstance(target, HttpTarget):
        return "https" if target.tls else "http"
    return target.kind


@functools.lru_cache(maxsize=16384)  # a fleet parses the same addresses again and again
def parse_address(address: str) -> Target:
    """``address`` as a typed target, or :class:`AddressError` saying what is accepted."""
    text = address.strip()
    if not text:
        raise AddressError("address: is empty; e.g. https://example.com or tcp://db.local:5432")
    if len(text) > ADDRESS_MAX:
        raise AddressError(f"address: is longer than {ADDRESS_MAX} characters")
    if any(c.isspace() for c in text):
        raise AddressError("address: must not contain spaces")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise AddressError(
            f"address: {text[:60]} has no scheme; write it as http://, https://, tcp://, "
            "tls://, dns:// or recorder://, e.g. https://example.com"
        )
    scheme = scheme.lower()
    try:
        if scheme in ("http", "https"):
            return _http(text, scheme == "https")
        if scheme in ("tcp", "tls"):
            return _host_port(scheme, rest)
        if scheme == "dns":
            return _dns(rest)
        if scheme == "recorder":
            return _recorder(rest)
    except HostError as exc:
        raise AddressError(f"address: {exc}") from None
    shown = scheme[:20] or "(empty)"
    accepted = ", ".join(SCHEMES[:-1]) + " or " + SCHEMES[-1]
    raise AddressError(f"address: scheme {shown} is not supported; use {accepted}")


def _http(text: str, tls: bool) -> HttpTarget:
    try:
        url = _HTTP_URL.validate_python(text)
    except ValidationError as exc:
        why = exc.errors(include_url=False)[0]["msg"]
        raise AddressError(
            f"address: not a valid URL ({why}), e.g. https://example.com/health"
        ) from None
    if url.host is None or url.port is None:  # AnyHttpUrl requires a host; port defaults
        raise AddressError("address: names no host, e.g. https://example.com/health")
    return HttpTarget(url=text, host=url.host.strip("[]"), port=url.port, tls=tls)


def _host_port(scheme: str, rest: str) -> TcpTarget | TlsTarget:
    example = f"{scheme}://db.local:5432" if scheme == "tcp" else f"{scheme}://mail.local:993"
    netloc, extra = _netloc(rest)
    if extra:
        raise AddressError(f"address: {scheme}:// takes only host:port, e.g. {example}")
    host, port = split_host_port(netloc, scheme=f"{scheme}://", example=example)
    if port is None:
        raise AddressError(f"address: {scheme}:// needs a port, e.g. {example}")
    if scheme == "tcp":
        return TcpTarget(host=host, port=port)
    return TlsTarget(host=host, port=port)


def _dns(rest: str) -> DnsTarget:
    netloc, sep, query = rest.partition("?")
    if netloc.endswith("/"):
        netloc = netloc[:-1]
    if not netloc:
        raise AddressError("address: dns:// needs a name, e.g. dns://example.com?type=A")
    netloc = ascii_host(netloc, "dns:// name")
    if not valid_dns_name(netloc):
        raise AddressError(f"address: dns:// name {netloc[:60]} is not a valid DNS name")
    record_type, server, server_port = "A", None, DNS_PORT
    seen: set[str] = set()
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(sep))
    except ValueError:
        raise AddressError("address: dns:// query must be key=value pairs joined by &") from None
    for key, value in params:
        if key in seen:
            raise AddressError(f"address: dns:// parameter {key} is given twice")
        seen.add(key)
        if key == "type":
            record_type = value.upper()
            if record_type not in RECORD_TYPES:
                raise AddressError(
                    f"address: dns:// type {value[:20] or '(empty)'} is not supported; "
                    f"use one of {', '.join(RECORD_TYPES)}"
                )
        elif key == "server":
            example = "server=1.1.1.1 or server=127.0.0.1:5353"
            server, port = split_host_port(value, scheme="dns:// server", example=example)
            if not valid_host(server, ip_only=True):
                raise AddressError(f"address: dns:// server must be an IP address, e.g. {example}")
            server_port = DNS_PORT if port is None else port
        else:
            raise AddressError(
                f"address: dns:// parameter {key[:20] or '(empty)'} is not supported; "
                "use type and server, e.g. dns://example.com?type=A&server=1.1.1.1"
            )
    return DnsTarget(netloc, record_type, server, server_port)


def _recorder(rest: str) -> RecorderTarget:
    if any(c in rest for c in "/?#"):
        raise AddressError(
            "address: recorder:// takes only a task id, e.g. recorder://task01 "
            "(write / ? # in it as %2F %3F %23)"
        )
    task_id = unquote(rest)
    if not task_id:
        raise AddressError("address: recorder:// needs a task id, e.g. recorder://task01")
    if len(task_id) > RECORDER_TASK_ID_MAX:
        raise AddressError(
            f"address: recorder task id is longer than {RECORDER_TASK_ID_MAX} characters"
        )
    if not task_id.isprintable():
        raise AddressError("address: recorder task id must not contain control characters")
    return RecorderTarget(task_id=task_id)


def _netloc(rest: str) -> tuple[str, str]:
    """``host:port`` and whatever follows it (a trailing ``/`` alone is allowed)."""
    for i, c in enumerate(rest):
        if c in "/?#":
            extra = rest[i:]
            return rest[:i], "" if extra == "/" else extra
    return rest, ""
