"""Host names, ``Host`` headers and browser origins: parsing and matching, no I/O.

Used by the settings (``ALLOWED_HOSTS``, ``ALLOWED_ORIGINS`` are validated with these
parsers) and by ``web/guards.py`` (which refuses requests with them).  Names are compared
in lower case without a trailing dot; IPv6 addresses are written in brackets
(``[::1]``), as in a ``Host`` header.  Examples::

    >>> parse_host("[::1]:8002")
    ('[::1]', 8002)
    >>> host_allowed("Fleet.Example.org.", ("*.example.org",))
    True
    >>> same_origin(parse_origin("http://127.0.0.1:8002"), "127.0.0.1:8002")
    True
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "LOCAL_HOSTS",
    "Origin",
    "default_allowed_hosts",
    "host_allowed",
    "host_pattern",
    "is_wildcard_bind",
    "parse_host",
    "parse_origin",
    "same_origin",
]

# What a browser on this machine calls a server bound to loopback.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
# A DNS name (letters, digits, "-", "_" in dot-separated labels) or an IPv4 address.
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


def _name(raw: str) -> str:
    """``raw`` as a comparable host: lower case, no trailing dot, IPv6 in brackets."""
    host = raw.strip().lower()
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"unclosed IPv6 bracket in {raw!r}")
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise ValueError(f"{raw!r} is not an IPv6 address") from None
    host = host.removesuffix(".")
    if not _NAME.match(host):
        raise ValueError(f"{raw!r} is not a host name")
    return host


def parse_host(value: str) -> tuple[str, int | None]:
    """A ``Host`` header as (host, port or None); ValueError when it is malformed.

    >>> parse_host("LOCALHOST:8002"), parse_host("example.org"), parse_host("[::1]")
    (('localhost', 8002), ('example.org', None), ('[::1]', None))
    """
    value = value.strip()
    if value.startswith("["):
        host, sep, rest = value.partition("]")
        host += sep
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r}: junk after the IPv6 address")
        port_text = rest[1:]
    else:
        host, _, port_text = value.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"{value!r}: bad port {port_text!r}")
        port = int(port_text)
    return _name(host), port


def host_pattern(entry: str) -> str:
    """One ``ALLOWED_HOSTS`` entry, normalised: ``*`` (any host), ``*.example.org`` (its
    sub-domains), a name or an address (``::1`` becomes ``[::1]``).  No port: any port of
    an allowed host is allowed.

    >>> [host_pattern(e) for e in ("*", "*.Example.org", "::1", "Fleet.local")]
    ['*', '*.example.org', '[::1]', 'fleet.local']
    """
    entry = entry.strip()
    if entry == "*":
        return entry
    if entry.startswith("*."):
        return "*." + _name(entry[2:])
    no_port = f"{entry!r}: give a host without a port (any port is allowed)"
    if ":" in entry and not entry.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(entry).compressed}]"
        except ValueError:
            raise ValueError(no_port) from None
    host, port = parse_host(entry)
    if port is not None:
        raise ValueError(no_port)
    return host


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` (a name from :func:`parse_host`) matches an allowed pattern."""
    host = host.lower().removesuffix(".")
    for pattern in patterns:
        if pattern in ("*", host):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def is_wildcard_bind(bind_host: str) -> bool:
    """Whether a bind address listens on every interface (its name says nothing about the
    names clients use)."""
    return bind_host.strip().lower() in _WILDCARD_BINDS


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """``ALLOWED_HOSTS`` when unset: the loopback names, and the bind host unless it is a
    wildcard.

    >>> default_allowed_hosts("0.0.0.0"), default_allowed_hosts("fleet.lan")[-1]
    (('localhost', '127.0.0.1', '[::1]'), 'fleet.lan')
    """
    if is_wildcard_bind(bind_host):
        return LOCAL_HOSTS
    extra = host_pattern(bind_host)
    return LOCAL_HOSTS if extra in LOCAL_HOSTS else (*LOCAL_HOSTS, extra)


@dataclass(frozen=True, slots=True)
class Origin:
    """A web origin: scheme, host and port (the default port filled in)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_origin(value: str) -> Origin:
    """An ``Origin`` header or an ``ALLOWED_ORIGINS`` entry; ValueError for anything that is
    not ``http(s)://host[:port]`` (``null``, a path, user info, another scheme).

    >>> parse_origin("HTTPS://Dash.Example.org"), str(parse_origin("http://[::1]:8002"))
    (Origin(scheme='https', host='dash.example.org', port=443), 'http://[::1]:8002')
    """
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an origin") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{value!r} is not an http(s) origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{value!r}: an origin is scheme://host[:port], nothing more")
    host, port = parse_host(parts.netloc)
    return Origin(scheme, host, DEFAULT_PORTS[scheme] if port is None else port)


def same_origin(origin: Origin, host_header: str) -> bool:
    """Whether ``origin`` is the server's own, as the request's ``Host`` names it (a
    ``Host`` without a port means the default port of the origin's scheme: behind a TLS
    proxy, ``https://fleet.example.org`` and ``Host: fleet.example.org`` are one)."""
    try:
        host, port = parse_host(host_header)
    except ValueError:
        return False
    return origin.host == host and origin.port == (
        DEFAULT_PORTS[origin.scheme] if port is None else port
    )
