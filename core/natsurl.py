"""``NATS_URL``: one server or a cluster, parsed once, the same way everywhere.

A cluster is named as every NATS client names it, a comma-separated list::

    >>> parse_servers("nats://127.0.0.1:4222,nats://127.0.0.1:4223")
    ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']
    >>> parse_servers("10.0.0.5")
    ['nats://10.0.0.5:4222']
    >>> try:
    ...     parse_servers("nats://127.0.0.1:42x")
    ... except NatsUrlError as exc:
    ...     print(exc)
    NATS_URL: 'nats://127.0.0.1:42x' has port '42x', not a number 1-65535

nats-py takes a list (a comma-separated string would be read as one URL whose port is
``4222,nats:``); :func:`parse_servers` gives it one.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

SCHEMES = ("nats", "tls", "ws", "wss")
DEFAULT_PORT = 4222


class NatsUrlError(ValueError):
    """``NATS_URL`` names no usable server; the message is one line naming the variable."""


def _split(url: str) -> SplitResult:
    return urlsplit(url if "://" in url else f"nats://{url}")


def parse_server(url: str, variable: str = "NATS_URL") -> str:
    """One server URL, checked and completed with the default scheme and port."""
    raw = url.strip()
    if not raw:
        raise NatsUrlError(f"{variable}: an empty server in the list")
    parts = _split(raw)
    if parts.scheme not in SCHEMES:
        raise NatsUrlError(
            f"{variable}: {raw!r} has scheme {parts.scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    if not parts.hostname:
        raise NatsUrlError(f"{variable}: {raw!r} names no host")
    try:
        port = parts.port
        if port is None and parts.netloc.endswith(":"):
            raise ValueError("empty port")
    except ValueError:
        port_text = parts.netloc.rpartition(":")[2]
        raise NatsUrlError(
            f"{variable}: {raw!r} has port {port_text!r}, not a number 1-65535"
        ) from None
    if port == 0:
        raise NatsUrlError(f"{variable}: {raw!r} has port 0")
    if port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{DEFAULT_PORT}")
    return parts.geturl()


def parse_servers(value: str, variable: str = "NATS_URL") -> list[str]:
    """Every server of a ``NATS_URL`` (one, or a comma-separated cluster list)."""
    if not value.strip():
        raise NatsUrlError(f"{variable}: empty; set a URL such as nats://127.0.0.1:4222")
    return [parse_server(item, variable) for item in value.split(",")]


def host_port(url: str) -> tuple[str, int]:
    """``nats://user:pw@host:4222`` -> ``("host", 4222)`` (of one server)."""
    parts = _split(url)
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT


def redact(url: str) -> str:
    """The URL (or comma-separated list) without credentials, for logs and errors."""
    if "," in url:
        return ",".join(redact(item) for item in url.split(","))
    try:
        parts = _split(url)
        port = parts.port
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url
    if not parts.username:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}:{port}" if port else f"***@{host}"
    return parts._replace(netloc=netloc).geturl()
