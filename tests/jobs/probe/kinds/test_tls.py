"""The tls:// check and the https:// certificate helpers against a local TLS server whose
self-signed certificate (made here with cryptography) expires in two days."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jobs.probe.http import AiohttpProbeClient, StockProbeClient
from jobs.probe.kinds.address import HttpTarget, TlsTarget, parse_address
from jobs.probe.kinds.tls import (
    certificate_facts,
    https_certificate,
    peer_certificate,
    probe_tls,
    response_certificate,
)
from tests.jobs.probe.kinds.servers import (
    SelfSigned,
    full_backlog,
    http_ok,
    listening,
    self_signed,
)

TWO_DAYS = timedelta(days=2)


@pytest.fixture(scope="module")
def cert() -> SelfSigned:
    return self_signed(TWO_DAYS)


@pytest.fixture
def server_ctx(cert: SelfSigned, tmp_path: Path) -> ssl.SSLContext:
    return cert.server_context(tmp_path)


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_certificate_expiring_in_two_days_shows_under_72h(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    now = datetime.now(UTC)
    async with listening(ssl_context=server_ctx) as port:
        target = parse_address(f"tls://localhost:{port}")
        assert isinstance(target, TlsTarget)
        facts = await probe_tls(target, timeout=5, context=cert.client_context(), now=now)
    assert facts.connected is True, facts.error
    assert facts.error_kind is None
    assert facts.certificate_expires_at == cert.not_after
    assert facts.certificate_expiration == cert.not_after - now
    assert facts.certificate_expiration < timedelta(hours=72)
    assert facts.certificate_subject == "O=fleetprobe tests,CN=localhost"
    assert facts.response_time_ms is not None and facts.response_time_ms >= 0


async def test_expiration_is_read_from_the_clock_when_no_now_is_given(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    async with listening(ssl_context=server_ctx) as port:
        facts = await probe_tls(
            TlsTarget("127.0.0.1", port), timeout=5, context=cert.client_context()
        )
    assert facts.certificate_expiration is not None
    assert TWO_DAYS - timedelta(minutes=10) < facts.certificate_expiration <= TWO_DAYS


async def test_an_untrusted_certificate_fails_verification_by_default(
    server_ctx: ssl.SSLContext,
) -> None:
    async with listening(ssl_context=server_ctx) as port:
        facts = await probe_tls(TlsTarget("localhost", port), timeout=5)
    assert facts.connected is False
    assert facts.error_kind == "tls"
    assert facts.error is not None and "certificate verify failed" in facts.error
    assert facts.certificate_expires_at is None


async def test_verify_tls_off_still_reads_the_certificate(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    async with listening(ssl_context=server_ctx) as port:
        facts = await probe_tls(TlsTarget("localhost", port), timeout=5, verify_tls=False)
    assert facts.connected is True
    assert facts.certificate_expires_at == cert.not_after
    assert facts.certificate_subject == "O=fleetprobe tests,CN=localhost"


async def test_a_server_that_never_answers_the_hello_times_out() -> None:
    async with listening() as port:  # plain TCP: accepts, never speaks TLS
        facts = await probe_tls(TlsTarget("127.0.0.1", port), timeout=0.5)
    assert facts.connected is False
    assert facts.error_kind == "timeout"
    assert facts.error == f"timeout: no TLS handshake with 127.0.0.1:{port} within 0.5s"


async def test_a_port_that_never_accepts_times_out() -> None:
    with full_backlog() as port:
        facts = await probe_tls(TlsTarget("127.0.0.1", port), timeout=0.5)
    assert (facts.connected, facts.error_kind) == (False, "timeout")


async def test_a_peer_that_hangs_up_mid_handshake_is_a_failure_not_an_exception() -> None:
    async with listening(_close_at_once) as port:
        facts = await probe_tls(TlsTarget("127.0.0.1", port), timeout=5)
    assert facts.connected is False
    assert facts.error_kind in {"tls", "connection"}
    assert facts.error


async def test_a_closed_port_is_refused() -> None:
    async with listening() as port:
        pass
    facts = await probe_tls(TlsTarget("127.0.0.1", port), timeout=5)
    assert (facts.connected, facts.error_kind) == (False, "refused")


async def test_https_certificate_handshakes_with_the_urls_host_and_port(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    now = datetime.now(UTC)
    async with listening(http_ok, ssl_context=server_ctx) as port:
        target = parse_address(f"https://127.0.0.1:{port}/health")
        assert isinstance(target, HttpTarget)
        facts = await https_certificate(target, timeout=5, context=cert.client_context(), now=now)
    assert facts.certificate_expiration == cert.not_after - now
    assert facts.certificate_expiration < timedelta(hours=72)


async def test_https_certificate_of_a_plain_http_address_says_so() -> None:
    target = parse_address("http://127.0.0.1:1/")
    assert isinstance(target, HttpTarget)
    facts = await https_certificate(target, timeout=1)
    assert (facts.error_kind, facts.error) == ("invalid_url", "not an https:// address")


async def test_httpx_own_engine_hands_over_thepeer_certificate(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    now = datetime.now(UTC)
    async with (
        listening(http_ok, ssl_context=server_ctx) as port,
        StockProbeClient(verify=cert.client_context()) as client,
        client.stream("GET", f"https://127.0.0.1:{port}/") as response,
    ):
        facts = response_certificate(response, now=now)
        assert response.status_code == 200
    assert facts is not None
    assert facts.certificate_expiration == cert.not_after - now


async def test_httpx_aiohttp_engine_does_not_expose_the_certificate(
    cert: SelfSigned, server_ctx: ssl.SSLContext
) -> None:
    # Why https checks under the default engine need https_certificate's own handshake.
    # If this starts failing, httpx-aiohttp exposes the connection: use it instead.
    async with (
        listening(http_ok, ssl_context=server_ctx) as port,
        AiohttpProbeClient(verify=cert.client_context()) as client,
        client.stream("GET", f"https://127.0.0.1:{port}/") as response,
    ):
        assert response.status_code == 200
        assert response_certificate(response) is None


def test_response_certificate_of_a_response_without_a_connection_is_none() -> None:
    assert response_certificate(httpx.Response(200)) is None


def test_certificate_facts_reads_expiry_and_subject_from_der(cert: SelfSigned) -> None:
    der = x509.load_pem_x509_certificate(cert.cert_pem).public_bytes(serialization.Encoding.DER)
    now = cert.not_after - timedelta(hours=5)
    facts = certificate_facts(der, now)
    assert facts.certificate_expires_at == cert.not_after
    assert facts.certificate_expiration == timedelta(hours=5)
    assert facts.certificate_subject == "O=fleetprobe tests,CN=localhost"


class _StubSSLObject:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.der


class _StubWriter:
    def __init__(self, ssl_object: _StubSSLObject | None) -> None:
        self.ssl_object = ssl_object

    def get_extra_info(self, name: str) -> object:
        return self.ssl_object if name == "ssl_object" else None


@pytest.mark.parametrize(
    ("writer", "error"),
    [
        (_StubWriter(_StubSSLObject(b"not a certificate")), "unreadable certificate: "),
        (_StubWriter(_StubSSLObject(None)), "the peer sent no certificate"),
        (_StubWriter(None), "the peer sent no certificate"),
    ],
    ids=["garbage-der", "no-der", "no-ssl-object"],
)
def test_a_certificate_that_cannot_be_read_is_a_tls_failure(writer: object, error: str) -> None:
    facts = peer_certificate(writer, datetime.now(UTC))  # type: ignore[arg-type]
    assert facts.error_kind == "tls"
    assert facts.error is not None and facts.error.startswith(error)
    assert facts.certificate_expires_at is None
