"""NATS_URL: one server or a cluster list, parsed by one function; a malformed URL is one
line naming NATS_URL (pure, table-driven; one check against a live server)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.natsserver import EmbeddedNats, free_port, is_reachable
from core.natsurl import NatsUrlError, parse_servers, redact
from core.settings import Settings, settings_error


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        ("nats://127.0.0.1:4222", ["nats://127.0.0.1:4222"]),
        ("127.0.0.1", ["nats://127.0.0.1:4222"]),
        ("nats://h1", ["nats://h1:4222"]),
        (
            "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"],
        ),
        ("nats://a:1, nats://b:2 ,nats://c:3", ["nats://a:1", "nats://b:2", "nats://c:3"]),
        ("nats://app:s3cret@h:4222,tls://h2:4443", ["nats://app:s3cret@h:4222", "tls://h2:4443"]),
        ("ws://h:8080", ["ws://h:8080"]),
    ],
)
def test_a_server_or_a_cluster_list_parses(value: str, servers: list[str]) -> None:
    assert parse_servers(value) == servers
    assert Settings(NATS_URL=value).nats_servers == servers


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("nats://127.0.0.1:42745,nats:", "'nats:' has port ''"),
        ("nats://127.0.0.1:42x", "port '42x', not a number"),
        ("nats://127.0.0.1:99999", "port '99999', not a number"),
        ("http://127.0.0.1:4222", "scheme 'http'"),
        ("nats://a:1,,nats://b:2", "an empty server"),
        ("", "empty"),
        ("nats://:4222", "names no host"),
    ],
)
def test_a_malformed_nats_url_is_one_line_naming_nats_url(value: str, says: str) -> None:
    with pytest.raises(NatsUrlError, match=says):
        parse_servers(value)
    with pytest.raises(ValidationError) as caught:
        Settings(NATS_URL=value)
    line = settings_error(caught.value)
    assert line.startswith("NATS_URL: ") and says in line
    assert "\n" not in line


def test_settings_errors_of_several_variables_share_one_line() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(NATS_URL="nats://h:x", SQLITE_SYNCHRONOUS="off")
    line = settings_error(caught.value)
    assert "\n" not in line
    assert "NATS_URL: " in line and "SQLITE_SYNCHRONOUS: " in line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://app:pw@10.0.0.1:4222", "nats://***@10.0.0.1:4222"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://a:p@h1:1,nats://a:p@h2:2", "nats://***@h1:1,nats://***@h2:2"),
        ("nats://t0ken@h:x", "h:x"),
    ],
)
def test_credentials_never_reach_a_log_line(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_cluster_list_is_reachable_when_any_server_answers(nats_server: EmbeddedNats) -> None:
    nobody = f"nats://127.0.0.1:{free_port()}"
    assert not is_reachable(nobody)
    assert is_reachable(f"{nobody},{nats_server.url}")
