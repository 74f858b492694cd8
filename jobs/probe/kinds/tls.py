"""The ``tls://host:port`` check: a TLS handshake and the peer's certificate.

``[CONNECTED]`` is a completed handshake (verified against the system's CAs unless
``verify_tls=False``); ``[CERTIFICATE_EXPIRATION]`` is the certificate's ``notAfter``
minus ``now`` (passed in, or read once when the certificate arrives).  The certificate
is parsed from its DER bytes with ``cryptography``: ``getpeercert()``'s dict is empty
when verification is off, and the DER form is there either way.

:func:`response_certificate` reads them from an open ``https://`` response when the HTTP
engine exposes its connection (httpx's own does, httpx-aiohttp does not);
:func:`https_certificate` gets them with a handshake of its own otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
import time
from datetime import UTC, datetime

import httpx
from cryptography import x509

from jobs.probe.facts import Facts
from jobs.probe.http import peer_der
from jobs.probe.kinds.address import HttpTarget, TlsTarget
from jobs.probe.kinds.failure import (
    ERROR_TEXT_MAX,
    ErrorKind,
    elapsed_ms,
    from_exception,
    timed_out,
)
from jobs.probe.kinds.tcp import close_quietly


@functools.cache
def default_context(verify: bool) -> ssl.SSLContext:
    """One context per verify mode and process: building one loads the CA bundle."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def certificate_facts(der: bytes, now: datetime) -> Facts:
    """The certificate fields of :class:`Facts` read from a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    expires_at = cert.not_valid_after_utc
    return Facts(
        certificate_expires_at=expires_at,
        certificate_expiration=expires_at - now,
        certificate_subject=cert.subject.rfc4514_string(),
    )


async def probe_tls(
    target: TlsTarget,
    *,
    timeout: float,
    verify_tls: bool = True,
    context: ssl.SSLContext | None = None,
    now: datetime | None = None,
) -> Facts:
    """Handshake with ``target`` within ``timeout`` seconds; the facts of what happened.

    ``context`` replaces the default one (a private CA, client certificates); it then
    decides verification itself and ``verify_tls`` is not read.
    """
    started = time.perf_counter()
    ctx = context if context is not None else default_context(verify_tls)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                target.host, target.port, ssl=ctx, server_hostname=target.host
            )
        handshake_ms = elapsed_ms(started)
    except TimeoutError:
        return timed_out(timeout, started, f"no TLS handshake with {target.host}:{target.port}")
    except Exception as exc:  # failures are data (jobs/probe/kinds/failure.py)
        return from_exception(exc, started)
    try:
        facts = peer_certificate(writer, now)
    finally:
        await close_quietly(writer)
    return dataclasses.replace(facts, connected=True, response_time_ms=handshake_ms)


def peer_certificate(writer: asyncio.StreamWriter, now: datetime | None) -> Facts:
    """The certificate facts of a completed handshake, or why there are none."""
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return Facts(error_kind=ErrorKind.TLS.value, error="the peer sent no certificate")
        return certificate_facts(der, now if now is not None else datetime.now(UTC))
    except Exception as exc:  # a certificate cryptography cannot read is data too
        text = " ".join(f"unreadable certificate: {exc}".split())[:ERROR_TEXT_MAX]
        return Facts(error_kind=ErrorKind.TLS.value, error=text)


def response_certificate(response: httpx.Response, now: datetime | None = None) -> Facts | None:
    """The certificate facts of an https ``response`` still open (before ``aclose``),
    or ``None`` when the engine does not expose its connection.

    httpx's own transport puts its connection in ``response.extensions["network_stream"]``
    (httpcore's documented extension); httpx-aiohttp, the default engine, puts none.
    """
    der = peer_der(response)
    if der is None:
        return None
    try:
        return certificate_facts(der, now if now is not None else datetime.now(UTC))
    except ValueError:
        return None


async def https_certificate(
    target: HttpTarget,
    *,
    timeout: float,
    verify_tls: bool = True,
    context: ssl.SSLContext | None = None,
    now: datetime | None = None,
) -> Facts:
    """The certificate facts of an ``https://`` target, from a handshake of its own.

    The HTTP engine cannot hand the certificate over: httpx-aiohttp (the default engine)
    puts no ``network_stream`` in the response's extensions and keeps aiohttp's response
    private, and a keep-alive response may come over a connection whose handshake was
    long ago.  So this makes one TLS handshake to the URL's host and port; the integration
    decides how often (certificates change rarely: once a day per host is plenty).
    Only the certificate fields (and, on failure, ``error_kind``/``error``) are meant to be
    merged into the HTTP check's facts; ``connected`` here is the handshake's.
    """
    if not target.tls:
        return Facts(error_kind=ErrorKind.INVALID_URL.value, error="not an https:// address")
    tls_target = TlsTarget(host=target.host, port=target.port)
    return await probe_tls(
        tls_target, timeout=timeout, verify_tls=verify_tls, context=context, now=now
    )
