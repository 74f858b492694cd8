"""``core/hosts.py``: Host headers, ALLOWED_HOSTS entries and origins, parsed and matched
(pure, table-driven); the settings that use them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.hosts import (
    Origin,
    default_allowed_hosts,
    host_allowed,
    host_pattern,
    parse_host,
    parse_origin,
    same_origin,
)
from core.settings import Settings


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("127.0.0.1:8002", ("127.0.0.1", 8002)),
        ("LocalHost", ("localhost", None)),
        ("localhost.:80", ("localhost", 80)),
        ("[::1]:8002", ("[::1]", 8002)),
        ("[0:0::1]", ("[::1]", None)),
        ("fleet-1.example.org", ("fleet-1.example.org", None)),
        ("host:", ("host", None)),
    ],
)
def test_a_host_header_is_parsed_into_a_comparable_name_and_a_port(
    header: str, parsed: tuple[str, int | None]
) -> None:
    assert parse_host(header) == parsed


@pytest.mark.parametrize(
    "header",
    ["", "::1", "[::1", "[::1]x", "[nope]:80", "host:http", "host:99999", "a b", "a/b", "é.org"],
)
def test_a_malformed_host_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        parse_host(header)


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        ("*", "*"),
        ("*.Example.ORG", "*.example.org"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("Fleet.local.", "fleet.local"),
        (" 10.0.0.5 ", "10.0.0.5"),
    ],
)
def test_an_allowed_hosts_entry_is_normalised(entry: str, pattern: str) -> None:
    assert host_pattern(entry) == pattern


@pytest.mark.parametrize("entry", ["fleet.local:8002", "[::1]:80", "http://fleet.local", "*x"])
def test_an_allowed_hosts_entry_with_a_port_or_a_scheme_is_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        host_pattern(entry)


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("localhost", ("localhost",), True),
        ("LOCALHOST.", ("localhost",), True),
        ("evil.example", ("localhost", "127.0.0.1", "[::1]"), False),
        ("127.0.0.1.evil.example", ("127.0.0.1",), False),
        ("a.example.org", ("*.example.org",), True),
        ("example.org", ("*.example.org",), False),
        ("badexample.org", ("*.example.org",), False),
        ("anything", ("*",), True),
        ("[::1]", ("[::1]",), True),
    ],
)
def test_hosts_match_exactly_or_by_sub_domain_pattern(
    host: str, patterns: tuple[str, ...], allowed: bool
) -> None:
    assert host_allowed(host, patterns) is allowed


@pytest.mark.parametrize(
    ("bind", "hosts"),
    [
        ("127.0.0.1", ("localhost", "127.0.0.1", "[::1]")),
        ("0.0.0.0", ("localhost", "127.0.0.1", "[::1]")),
        ("::", ("localhost", "127.0.0.1", "[::1]")),
        ("::1", ("localhost", "127.0.0.1", "[::1]")),
        ("192.168.1.10", ("localhost", "127.0.0.1", "[::1]", "192.168.1.10")),
        ("Fleet.LAN", ("localhost", "127.0.0.1", "[::1]", "fleet.lan")),
    ],
)
def test_the_default_allowed_hosts_add_the_bind_host_unless_it_is_a_wildcard(
    bind: str, hosts: tuple[str, ...]
) -> None:
    assert default_allowed_hosts(bind) == hosts


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("http://127.0.0.1:8002", Origin("http", "127.0.0.1", 8002)),
        ("HTTPS://Dash.Example.org", Origin("https", "dash.example.org", 443)),
        ("http://[::1]:8002/", Origin("http", "[::1]", 8002)),
        ("http://fleet.lan:80", Origin("http", "fleet.lan", 80)),
    ],
)
def test_an_origin_is_parsed_with_its_default_port(value: str, origin: Origin) -> None:
    assert parse_origin(value) == origin


@pytest.mark.parametrize(
    "value",
    ["null", "", "file://", "ws://x", "chrome-extension://abc", "http://a/b", "http://u@a", "x"],
)
def test_anything_but_an_http_origin_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_origin(value)


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8002", "127.0.0.1:8002", True),
        ("http://localhost:8002", "LOCALHOST:8002", True),
        ("http://127.0.0.1:8003", "127.0.0.1:8002", False),
        ("http://localhost:8002", "127.0.0.1:8002", False),
        ("http://evil.example", "127.0.0.1:8002", False),
        ("https://fleet.example.org", "fleet.example.org", True),  # behind a TLS proxy
        ("http://fleet.example.org", "fleet.example.org:80", True),
        ("https://fleet.example.org", "fleet.example.org:80", False),
        ("http://[::1]:8002", "[::1]:8002", True),
        ("http://127.0.0.1:8002", "bad host", False),
    ],
)
def test_an_origin_is_the_servers_own_when_host_and_port_are_those_of_the_host_header(
    origin: str, host: str, same: bool
) -> None:
    assert same_origin(parse_origin(origin), host) is same


def test_the_settings_read_comma_separated_hosts_and_origins() -> None:
    settings = Settings(  # type: ignore[call-arg]
        ALLOWED_HOSTS=" Fleet.example.org, ::1,,*.lan ",
        ALLOWED_ORIGINS="https://dash.example.org:443,http://Ops:8080",
    )
    assert settings.allowed_hosts == ("fleet.example.org", "[::1]", "*.lan")
    assert settings.allowed_origins == ("https://dash.example.org", "http://ops:8080")
    assert Settings().allowed_hosts is None and Settings().allowed_origins == ()
    assert Settings(ALLOWED_HOSTS="").allowed_hosts is None  # type: ignore[call-arg]


def test_the_settings_read_the_lists_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example,b.example")
    monkeypatch.setenv("ALLOWED_ORIGINS", "http://a.example:8002")
    settings = Settings()
    assert settings.allowed_hosts == ("a.example", "b.example")
    assert settings.allowed_origins == ("http://a.example:8002",)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ALLOWED_HOSTS": "fleet.lan:8002"}, "without a port"),
        ({"ALLOWED_HOSTS": "http://fleet.lan"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_ORIGINS": "https://dash.example.org/app"}, "scheme://host[:port]"),
        ({"ALLOWED_ORIGINS": "null"}, "ALLOWED_ORIGINS"),
    ],
)
def test_invalid_hosts_and_origins_are_refused_naming_the_variable(
    env: dict[str, str], says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**env)  # type: ignore[arg-type]
    assert next(iter(env)) in str(info.value) and says in str(info.value)
