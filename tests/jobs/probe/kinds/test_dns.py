"""The dns:// check against a DNS responder started by the test (dnspython's message API
on a local UDP port): answers, NXDOMAIN, SERVFAIL, silence."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobs.probe.kinds.address import DnsTarget, parse_address
from jobs.probe.kinds.dns import probe_dns, server_resolver
from tests.jobs.probe.kinds.servers import DnsResponder, dns_server

RECORDS = {"up.test.": ["192.0.2.1", "192.0.2.2"], "one.test.": ["198.51.100.7"]}


@pytest.fixture
async def dns_port() -> AsyncIterator[tuple[int, DnsResponder]]:
    async with dns_server(RECORDS) as served:
        yield served


def at(port: int, name: str, record_type: str = "A") -> DnsTarget:
    target = parse_address(f"dns://{name}?type={record_type}&server=127.0.0.1:{port}")
    assert isinstance(target, DnsTarget)
    return target


async def test_a_records_are_the_body_one_per_line(dns_port: tuple[int, DnsResponder]) -> None:
    port, responder = dns_port
    facts = await probe_dns(at(port, "up.test"), timeout=5)
    assert facts.connected is True
    assert facts.dns_rcode == "NOERROR"
    assert facts.body is not None and sorted(facts.body.splitlines()) == ["192.0.2.1", "192.0.2.2"]
    assert facts.error_kind is None
    assert facts.response_time_ms is not None and facts.response_time_ms >= 0
    assert responder.queries == ["up.test. A"]


async def test_an_unknown_name_is_nxdomain_an_answer_not_a_failure(
    dns_port: tuple[int, DnsResponder],
) -> None:
    facts = await probe_dns(at(dns_port[0], "missing.test"), timeout=5)
    assert (facts.connected, facts.dns_rcode, facts.body) == (True, "NXDOMAIN", "")
    assert facts.error_kind is None


async def test_a_name_without_records_of_the_type_is_noerror_with_an_empty_body(
    dns_port: tuple[int, DnsResponder],
) -> None:
    port, responder = dns_port
    facts = await probe_dns(at(port, "up.test", "MX"), timeout=5)
    assert (facts.connected, facts.dns_rcode, facts.body) == (True, "NOERROR", "")
    assert responder.queries == ["up.test. MX"]


async def test_servfail_is_reported_as_the_rcode(dns_port: tuple[int, DnsResponder]) -> None:
    facts = await probe_dns(at(dns_port[0], "fail.test"), timeout=5)
    assert (facts.connected, facts.dns_rcode) == (True, "SERVFAIL")


async def test_a_server_that_never_replies_times_out_as_data(
    dns_port: tuple[int, DnsResponder],
) -> None:
    facts = await probe_dns(at(dns_port[0], "silent.test"), timeout=0.5)
    assert facts.connected is False
    assert facts.dns_rcode is None
    assert facts.error_kind == "timeout"
    assert facts.error == "timeout: no DNS reply for silent.test within 0.5s"


async def test_without_a_server_the_given_resolver_is_asked(
    dns_port: tuple[int, DnsResponder],
) -> None:
    # The system resolver is the default; a worker (or this test) may hand its own in.
    port, responder = dns_port
    target = parse_address("dns://one.test")
    assert isinstance(target, DnsTarget) and target.server is None
    facts = await probe_dns(target, timeout=5, resolver=server_resolver("127.0.0.1", port))
    assert (facts.dns_rcode, facts.body) == ("NOERROR", "198.51.100.7")
    assert responder.queries == ["one.test. A"]


async def test_a_name_dnspython_refuses_is_a_failure_not_an_exception(
    dns_port: tuple[int, DnsResponder],
) -> None:
    # Bypasses the parser: a label longer than 63 characters.
    target = DnsTarget("x" * 70 + ".test", "A", "127.0.0.1", dns_port[0])
    facts = await probe_dns(target, timeout=2)
    assert facts.connected is False
    assert facts.error_kind is not None and facts.error
