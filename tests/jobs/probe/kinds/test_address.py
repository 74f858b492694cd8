"""The address parser: every accepted form, and every refusal with the message a person
reads (the API's 422 later)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jobs.probe.kinds.address import (
    AddressError,
    DnsTarget,
    HttpTarget,
    RecorderTarget,
    Target,
    TcpTarget,
    TlsTarget,
    kind_of,
    parse_address,
)

VALID: list[tuple[str, Target]] = [
    ("http://example.com", HttpTarget("http://example.com", "example.com", 80, tls=False)),
    (
        "https://example.com/health?x=1",
        HttpTarget("https://example.com/health?x=1", "example.com", 443, tls=True),
    ),
    (
        "HTTPS://Example.COM:8443/",
        HttpTarget("HTTPS://Example.COM:8443/", "example.com", 8443, True),
    ),
    ("http://[::1]:8080/x", HttpTarget("http://[::1]:8080/x", "::1", 8080, tls=False)),
    (
        "https://bücher.example/",
        HttpTarget("https://bücher.example/", "xn--bcher-kva.example", 443, tls=True),
    ),
    (" http://padded.example ", HttpTarget("http://padded.example", "padded.example", 80, False)),
    ("tcp://db.local:5432", TcpTarget("db.local", 5432)),
    ("TCP://DB.Local:5432/", TcpTarget("db.local", 5432)),
    ("tcp://10.0.0.7:22", TcpTarget("10.0.0.7", 22)),
    ("tcp://[2001:db8::1]:443", TcpTarget("2001:db8::1", 443)),
    ("tcp://internal_host:1", TcpTarget("internal_host", 1)),
    ("tcp://h:65535", TcpTarget("h", 65535)),
    ("tcp://bücher.example:80", TcpTarget("xn--bcher-kva.example", 80)),
    ("tls://mail.local:993", TlsTarget("mail.local", 993)),
    ("tls://[::1]:853", TlsTarget("::1", 853)),
    ("dns://example.com", DnsTarget("example.com")),
    ("dns://example.com/", DnsTarget("example.com")),
    ("dns://example.com.?type=mx", DnsTarget("example.com.", "MX")),
    ("dns://example.com?type=AAAA", DnsTarget("example.com", "AAAA")),
    ("dns://example.com?type=A&server=1.1.1.1", DnsTarget("example.com", "A", "1.1.1.1", 53)),
    ("dns://example.com?server=127.0.0.1:5353", DnsTarget("example.com", "A", "127.0.0.1", 5353)),
    ("dns://example.com?server=[::1]:5353&type=TXT", DnsTarget("example.com", "TXT", "::1", 5353)),
    ("dns://_sip._tcp.example.com?type=SRV", DnsTarget("_sip._tcp.example.com", "SRV")),
    ("dns://1.0.0.127.in-addr.arpa?type=PTR", DnsTarget("1.0.0.127.in-addr.arpa", "PTR")),
    ("recorder://task01", RecorderTarget("task01")),
    ("Recorder://cam-1.main", RecorderTarget("cam-1.main")),
    ("recorder://a%2Fb%20c", RecorderTarget("a/b c")),
    ("recorder://" + "t" * 128, RecorderTarget("t" * 128)),
]


@pytest.mark.parametrize(("address", "target"), VALID, ids=[a for a, _ in VALID])
def test_valid_address_parses_into_its_target(address: str, target: Target) -> None:
    assert parse_address(address) == target


SCHEMES = "use http, https, tcp, tls, dns or recorder"
INVALID: list[tuple[str, str]] = [
    ("", "address: is empty; e.g. https://example.com or tcp://db.local:5432"),
    ("   ", "address: is empty; e.g. https://example.com or tcp://db.local:5432"),
    ("ftp://x", f"address: scheme ftp is not supported; {SCHEMES}"),
    ("FTP://x", f"address: scheme ftp is not supported; {SCHEMES}"),
    ("://x", f"address: scheme (empty) is not supported; {SCHEMES}"),
    (
        "example.com",
        "address: example.com has no scheme; write it as http://, https://, tcp://, tls://, "
        "dns:// or recorder://, e.g. https://example.com",
    ),
    ("http://exa mple.com", "address: must not contain spaces"),
    ("https://" + "a" * 2050, "address: is longer than 2048 characters"),
    (
        "http://",
        "address: not a valid URL (Input should be a valid URL, empty host), "
        "e.g. https://example.com/health",
    ),
    ("tcp://db.local", "address: tcp:// needs a port, e.g. tcp://db.local:5432"),
    ("tcp://db.local:", "address: tcp:// port (empty) is not a number, e.g. tcp://db.local:5432"),
    ("tcp://db.local:abc", "address: tcp:// port abc is not a number, e.g. tcp://db.local:5432"),
    ("tcp://db.local:0", "address: tcp:// port 0 is out of range 1-65535"),
    ("tcp://db.local:65536", "address: tcp:// port 65536 is out of range 1-65535"),
    ("tcp://:5432", "address: tcp:// host (empty) is not a valid host name"),
    ("tcp://", "address: tcp:// needs a host, e.g. tcp://db.local:5432"),
    ("tcp://-bad-.local:1", "address: tcp:// host -bad-.local is not a valid host name"),
    ("tcp://a..b:1", "address: tcp:// host a..b is not a valid host name"),
    ("tcp://user@db:1", "address: tcp:// takes no user name or password, e.g. tcp://db.local:5432"),
    ("tcp://db:1/path", "address: tcp:// takes only host:port, e.g. tcp://db.local:5432"),
    ("tcp://db:1?x=1", "address: tcp:// takes only host:port, e.g. tcp://db.local:5432"),
    ("tcp://::1:5432", "address: tcp:// IPv6 addresses go in brackets, e.g. [::1]:5432"),
    ("tcp://[::g]:1", "address: tcp:// host [::g]:1 is not a valid IPv6 address"),
    ("tcp://[::1]x", "address: tcp:// host [::1]x is malformed, e.g. tcp://db.local:5432"),
    ("tls://mail.local", "address: tls:// needs a port, e.g. tls://mail.local:993"),
    ("dns://", "address: dns:// needs a name, e.g. dns://example.com?type=A"),
    ("dns://?type=A", "address: dns:// needs a name, e.g. dns://example.com?type=A"),
    ("dns://exa!mple.com", "address: dns:// name exa!mple.com is not a valid DNS name"),
    ("dns://example.com:53", "address: dns:// name example.com:53 is not a valid DNS name"),
    (
        "dns://example.com?type=XX",
        "address: dns:// type XX is not supported; "
        "use one of A, AAAA, CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT",
    ),
    (
        "dns://example.com?type=",
        "address: dns:// type (empty) is not supported; "
        "use one of A, AAAA, CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT",
    ),
    ("dns://example.com?type", "address: dns:// query must be key=value pairs joined by &"),
    ("dns://example.com?type=A&type=MX", "address: dns:// parameter type is given twice"),
    (
        "dns://example.com?timeout=1",
        "address: dns:// parameter timeout is not supported; use type and server, "
        "e.g. dns://example.com?type=A&server=1.1.1.1",
    ),
    (
        "dns://example.com?server=dns.google",
        "address: dns:// server must be an IP address, "
        "e.g. server=1.1.1.1 or server=127.0.0.1:5353",
    ),
    (
        "dns://example.com?server=1.1.1.1:99999",
        "address: dns:// server port 99999 is out of range 1-65535",
    ),
    ("recorder://", "address: recorder:// needs a task id, e.g. recorder://task01"),
    (
        "recorder://a/b",
        "address: recorder:// takes only a task id, e.g. recorder://task01 "
        "(write / ? # in it as %2F %3F %23)",
    ),
    ("recorder://" + "t" * 129, "address: recorder task id is longer than 128 characters"),
    ("recorder://a%0Ab", "address: recorder task id must not contain control characters"),
]


@pytest.mark.parametrize(("address", "message"), INVALID, ids=[a[:40] for a, _ in INVALID])
def test_invalid_address_is_refused_saying_what_is_accepted(address: str, message: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(address)
    assert str(caught.value) == message


def test_address_error_is_a_value_error_so_pydantic_reports_it_as_a_field_error() -> None:
    assert issubclass(AddressError, ValueError)


KINDS = [
    ("http://example.com", "http"),
    ("https://example.com", "http"),
    ("tcp://db:5432", "tcp"),
    ("tls://db:5432", "tls"),
    ("dns://example.com", "dns"),
    ("recorder://task01", "recorder"),
]


@pytest.mark.parametrize(("address", "kind"), KINDS)
def test_kind_of_names_the_kind_the_default_conditions_use(address: str, kind: str) -> None:
    assert kind_of(address) == kind
    assert parse_address(address).kind == kind


def test_kind_of_an_unknown_scheme_raises_the_same_error() -> None:
    with pytest.raises(AddressError, match="scheme gopher is not supported"):
        kind_of("gopher://x")


SCHEME_PREFIXES = st.sampled_from(
    ["", "http://", "https://", "tcp://", "tls://", "dns://", "recorder://"]
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(prefix=SCHEME_PREFIXES, rest=st.text(max_size=80))
def test_any_text_is_a_target_or_an_address_error_never_another_exception(
    prefix: str, rest: str
) -> None:
    try:
        target = parse_address(prefix + rest)
    except AddressError as exc:
        assert str(exc).startswith("address: ")
    else:
        assert target.kind in {"http", "tcp", "tls", "dns", "recorder"}


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(
    labels=st.lists(LABEL, min_size=1, max_size=4),
    port=st.integers(1, 65535),
    scheme=st.sampled_from(["tcp", "tls"]),
)
def test_every_host_and_port_round_trips(labels: list[str], port: int, scheme: str) -> None:
    host = ".".join(labels)
    target = parse_address(f"{scheme}://{host.upper()}:{port}")
    assert (target.kind, target) == (
        scheme,
        (TcpTarget if scheme == "tcp" else TlsTarget)(host, port),
    )


def test_the_recorder_task_id_bound_is_the_wire_formats() -> None:
    from jobs.probe.kinds.address import RECORDER_TASK_ID_MAX
    from jobs.recorder.wire import TASK_ID_MAX

    assert RECORDER_TASK_ID_MAX == TASK_ID_MAX
