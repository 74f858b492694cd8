"""Host names, IP addresses and ``host:port`` as addresses write them; pure.

::

    >>> split_host_port("[::1]:853", scheme="tls://", example="tls://[::1]:853")
    ('::1', 853)
    >>> split_host_port("Db.Local", scheme="tcp://", example="tcp://db.local:5432")
    ('db.local', None)
"""

from __future__ import annotations

import ipaddress
import re

PORT_MAX = 65535
HOSTNAME_MAX = 253
# A label of a host name (letters, digits, hyphens inside); "_" is allowed in DNS names
# (``_sip._tcp.example.com``) and, in practice, in some internal host names.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class HostError(ValueError):
    """A host or port an address cannot use; the message names it and shows an example."""


def split_host_port(netloc: str, *, scheme: str, example: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) as ``(host, port or None)``, the host checked.

    ``scheme`` and ``example`` go into the error messages (``tcp://``, ``dns:// server``).
    """
    if not netloc:
        raise HostError(f"{scheme} needs a host, e.g. {example}")
    if "@" in netloc:
        raise HostError(f"{scheme} takes no user name or password, e.g. {example}")
    if netloc.startswith("["):
        host, sep, after = netloc[1:].partition("]")
        if not sep or not _is_ip(host, version=6):
            raise HostError(f"{scheme} host {netloc[:60]} is not a valid IPv6 address")
        if after and not after.startswith(":"):
            raise HostError(f"{scheme} host {netloc[:60]} is malformed, e.g. {example}")
        port_text: str | None = after[1:] if after else None
    elif netloc.count(":") > 1:
        raise HostError(f"{scheme} IPv6 addresses go in brackets, e.g. [::1]:5432")
    else:
        host, sep, port_text = netloc.partition(":")
        if not sep:
            port_text = None
        host = ascii_host(host, scheme)
        if not valid_host(host):
            raise HostError(f"{scheme} host {host[:60] or '(empty)'} is not a valid host name")
    return host.lower(), None if port_text is None else parse_port(port_text, scheme, example)


def parse_port(text: str, scheme: str, example: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise HostError(f"{scheme} port {text[:20] or '(empty)'} is not a number, e.g. {example}")
    port = int(text)
    if not 1 <= port <= PORT_MAX:
        raise HostError(f"{scheme} port {port} is out of range 1-{PORT_MAX}")
    return port


def valid_host(host: str, *, ip_only: bool = False) -> bool:
    """An IP address, or (unless ``ip_only``) a host name of valid labels."""
    if _is_ip(host):
        return True
    return not ip_only and valid_dns_name(host)


def valid_dns_name(name: str) -> bool:
    """Labels of 1-63 letters, digits, ``-`` or ``_``; at most 253 characters; one final
    dot allowed (``example.com.``)."""
    name = name.removesuffix(".").lower()
    if not name or len(name) > HOSTNAME_MAX:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def ascii_host(host: str, scheme: str) -> str:
    """An internationalised host name in its ASCII (punycode) form, as DNS needs it;
    ``scheme`` names the address part in the error."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise HostError(f"{scheme} host {host[:60]} is not a valid host name") from None


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or ip.version == version
