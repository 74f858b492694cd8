"""The tcp:// check against real local ports: open, closed, silent, unresolvable."""

from __future__ import annotations

import pytest

from jobs.probe.kinds.address import TcpTarget, parse_address
from jobs.probe.kinds.tcp import probe_tcp
from tests.jobs.probe.kinds.servers import full_backlog, listening


async def test_open_port_is_connected_with_a_connect_time() -> None:
    async with listening() as port:
        target = parse_address(f"tcp://127.0.0.1:{port}")
        assert isinstance(target, TcpTarget)
        facts = await probe_tcp(target, timeout=5)
    assert facts.connected is True
    assert facts.response_time_ms is not None and facts.response_time_ms >= 0
    assert facts.error_kind is None and facts.error is None


async def test_the_same_port_once_closed_is_refused_not_raised() -> None:
    async with listening() as port:
        assert (await probe_tcp(TcpTarget("127.0.0.1", port), timeout=5)).connected
    facts = await probe_tcp(TcpTarget("127.0.0.1", port), timeout=5)
    assert facts.connected is False
    assert facts.error_kind == "refused"
    assert facts.error is not None and "refused" in facts.error.lower()
    assert facts.response_time_ms is not None


async def test_a_port_that_never_accepts_times_out_as_data() -> None:
    with full_backlog() as port:
        facts = await probe_tcp(TcpTarget("127.0.0.1", port), timeout=0.5)
    assert facts.connected is False
    assert facts.error_kind == "timeout"
    assert facts.error == f"timeout: no connection to 127.0.0.1:{port} within 0.5s"


async def test_an_unresolvable_host_is_a_dns_failure() -> None:
    # .invalid never resolves (RFC 6761); a machine without any resolver fails the same way.
    facts = await probe_tcp(TcpTarget("no-such-host.invalid", 80), timeout=10)
    assert facts.connected is False
    assert facts.error_kind == "dns"


@pytest.mark.parametrize(
    "target",
    [TcpTarget("", 0), TcpTarget("127.0.0.1", 70000), TcpTarget("bad host\x00", 1)],
    ids=["empty", "port-out-of-range", "nul-in-host"],
)
async def test_no_exception_escapes_even_for_targets_the_parser_would_refuse(
    target: TcpTarget,
) -> None:
    facts = await probe_tcp(target, timeout=2)
    assert facts.connected is False
    assert facts.error_kind is not None and facts.error
