"""Sending one message: a webhook POST (signed when the channel has a secret) or an
Apprise notification, through :func:`send` alone (a delivery, and ``POST
/channels/{id}/test``), over a client made by :func:`alert_client`.  A failed send is
data (:class:`Delivery`), never an exception; nothing here logs a URL, a secret or a
header value.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import apprise
import httpx

from core.secrets import MASK
from storage.alert_models import Channel

# Apprise logs the URLs it cannot parse, tokens and passwords included: its records are
# dropped; each send's outcome is reported by fleetprobe (Delivery, the ledger, one log line).
logging.getLogger("apprise").addFilter(lambda record: False)

SIGNATURE_HEADER = "X-Fleetprobe-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ANSWER_MAX = 500


@dataclass(frozen=True)
class Delivery:
    ok: bool
    response_code: int | None = None
    error: str | None = None
    # The start of what the receiver answered (webhooks), for POST /channels/{id}/test.
    answer: str | None = None


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` of the HMAC-SHA256 of ``body`` (as GitHub's webhooks)::

    >>> sign("s", b"{}")
    'sha256=143ca8d517ba1b181025d732b1cf275d90104fca57bb02a565542978aa18c4b6'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_client(timeout: float) -> httpx.AsyncClient:
    """The HTTP client of webhook sends: no redirects followed (a receiver that moved
    answers 3xx, a failure to see), ``timeout`` per attempt."""
    return httpx.AsyncClient(follow_redirects=False, timeout=timeout)


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


async def _send_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    key: str,
    secret: str | None,
    headers: dict[str, str] | None,
    timeout: float,
) -> Delivery:
    data = encode_body(body)
    sent = dict(headers or {})
    sent.update(
        {
            "Content-Type": "application/json",
            "User-Agent": "fleetprobe-alerts",
            IDEMPOTENCY_HEADER: key,
        }
    )
    if secret:
        sent[SIGNATURE_HEADER] = sign(secret, data)
    try:
        response = await client.post(url, content=data, headers=sent, timeout=timeout)
    except httpx.TimeoutException:
        return Delivery(False, error=f"timed out after {timeout:g}s")
    except httpx.HTTPError as exc:
        return Delivery(False, error=f"{type(exc).__name__}: {_cause(exc)}"[:ANSWER_MAX])
    answer = response.text[:ANSWER_MAX]
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code, answer=answer)
    return Delivery(False, response.status_code, f"HTTP {response.status_code}", answer)


def _cause(exc: BaseException) -> str:
    # httpx puts the URL in some messages; the innermost cause says what happened.
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return str(inner) or type(inner).__name__


async def _send_apprise(url: str, title: str, text: str, *, timeout: float) -> Delivery:
    sender = apprise.Apprise()
    if not sender.add(url):
        return Delivery(False, error="not a valid Apprise URL")
    try:
        async with asyncio.timeout(timeout):
            ok = await sender.async_notify(body=text, title=title)
    except TimeoutError:
        return Delivery(False, error=f"timed out after {timeout:g}s")
    return Delivery(True) if ok else Delivery(False, error="Apprise reported a failed send")


async def send(
    channel: Channel, body: dict[str, Any], *, key: str, http: httpx.AsyncClient, timeout: float
) -> Delivery:
    """``body`` through ``channel``: POSTed whole to a webhook, its title and text to
    Apprise; ``key`` is the webhook's ``Idempotency-Key``."""
    if channel.kind == "webhook":
        return await _send_webhook(
            http, channel.url, body, key=key, secret=channel.secret, headers=channel.headers,
            timeout=timeout,
        )  # fmt: skip
    return await _send_apprise(channel.url, body["title"], body["text"], timeout=timeout)


def check_apprise_url(url: str) -> str:
    """The URL with its secrets masked by Apprise itself, and ntfy topics too; ValueError
    if Apprise cannot use it (an unknown scheme, or a service's URL missing its parts)."""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not plugin:
        raise ValueError("not a URL Apprise can use (see https://github.com/caronc/apprise/wiki)")
    shown = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
    if type(plugin).__name__ == "NotifyNtfy":
        # Apprise shows ntfy topics, but on ntfy.sh the topic is the only key: whoever
        # knows it reads the alerts (and may publish to it).
        shown = _mask_segments(shown, {quote(t, safe="") for t in getattr(plugin, "topics", ())})
    return shown


def _hint(secret: str) -> str:
    """A secret shown as Apprise shows its own: its first and last character."""
    return f"{secret[0]}...{secret[-1]}" if len(secret) > 2 else MASK


def _mask_segments(url: str, secrets: set[str]) -> str:
    """``url`` with each host or path segment in ``secrets`` masked::

    >>> _mask_segments("ntfys://alerts-9f3k/ops?mode=cloud", {"alerts-9f3k", "ops"})
    'ntfys://a...k/o...s?mode=cloud'
    """
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if host in secrets:
        host = _hint(host)
    path = "/".join(_hint(s) if s in secrets else s for s in parts.path.split("/"))
    return urlunsplit((parts.scheme, userinfo + at + host, path, parts.query, parts.fragment))


def mask_url(kind: str, url: str) -> str:
    """A channel's URL fit to show: Apprise masks its own; a webhook keeps its scheme and
    host only (tokens live in paths and queries)::

    >>> mask_url("webhook", "https://u:p@hooks.example.org:8443/services/T0/B0?token=x")
    'https://hooks.example.org:8443/***?***'
    """
    if kind == "apprise":
        try:
            return check_apprise_url(url)
        except ValueError:
            return MASK
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = "/***" if parts.path not in ("", "/") else parts.path
    return urlunsplit((parts.scheme, netloc, path, MASK if parts.query else "", ""))
