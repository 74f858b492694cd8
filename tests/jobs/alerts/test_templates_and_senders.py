"""Message templates (sandboxed Jinja2), the webhook signature, masking of secrets, and the
senders against a real local receiver."""

from __future__ import annotations

import doctest
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import jobs.alerts.policy
import jobs.alerts.senders
import jobs.alerts.templates
from core.settings import Settings
from jobs.alerts.message import compose, device_link
from jobs.alerts.senders import alert_client, mask_url, send, sign
from jobs.alerts.templates import SAMPLE, TemplateProblem, render_message, render_template
from storage.alert_models import Channel
from tests.jobs.alerts.receiver import receiver


@pytest.mark.parametrize("module", [jobs.alerts.policy, jobs.alerts.senders, jobs.alerts.templates])
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_the_default_message_names_device_state_cause_error_and_link() -> None:
    title, text = render_message(None, None, SAMPLE)
    assert title == "router is DOWN"
    for part in ("router", "http://10.0.0.1/", "down", "3 failures in a row",
                 "connection refused", "http://127.0.0.1:8002/#/devices/1"):  # fmt: skip
        assert part in text
    reminder_title, _ = render_message(None, None, {**SAMPLE, "reminder": 2})
    assert reminder_title == "[reminder 2] router is DOWN"


def test_the_link_opens_the_device_page_of_the_dashboard() -> None:
    web = {"WEB_HOST": "127.0.0.1", "WEB_PORT": 8002}
    plain = Settings(**web, ALERT_LINK_BASE="")  # type: ignore[arg-type]
    assert device_link(plain, 7) == "http://127.0.0.1:8002/#/devices/7"
    assert device_link(plain, None) == "http://127.0.0.1:8002/"  # a test message's
    behind = Settings(ALERT_LINK_BASE="https://mon.example.org/")  # type: ignore[call-arg]
    assert device_link(behind, 7) == "https://mon.example.org/#/devices/7"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ device.nam }}", "has no attribute 'nam'"),
        ("{{ nope }}", "'nope' is undefined"),
        ("{% if %}", "Expected an expression"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),  # the sandbox refuses internals
    ],
)
def test_a_template_that_does_not_render_says_why(source: str, message: str) -> None:
    with pytest.raises(TemplateProblem, match=message):
        render_template(source, SAMPLE)


def test_a_channel_template_overrides_the_default() -> None:
    channel = Channel(name="c", kind="webhook", url="http://x/", title_template="{{ state }}!",
                      text_template="{{ device.name }} via {{ link }}")  # fmt: skip
    change = {"id": 4, "device_id": 1, "from_state": "up", "to_state": "down",
              "at": datetime(2026, 12, 1, tzinfo=UTC), "cause": "c", "run_key": "r"}  # fmt: skip
    body = compose(channel, change, {"id": 1, "name": "edge", "address": "http://e/"}, None,
                   "http://l/devices/1", 0)  # fmt: skip
    assert (body["title"], body["text"]) == ("down!", "edge via http://l/devices/1")
    assert body["state_change"]["from"] == "up" and body["state_change"]["to"] == "down"
    assert body["event"] == "state_change" and body["last_result"] is None


@pytest.mark.parametrize(
    ("kind", "url", "shown", "hidden"),
    [
        ("webhook", "https://user:pw@h.example.org/hook/s3cr3t?token=abc",
         "https://h.example.org/***?***", ("pw", "s3cr3t", "abc")),
        ("webhook", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/", ()),
        ("apprise", "mailto://user:smtppass@localhost:2525?to=x@example.com",
         "mailto://user:****@localhost", ("smtppass",)),
        ("apprise", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://T...2/",
         ("TIiajkdnlazkcOXrIdevi7FQ",)),
        # an ntfy.sh topic is its only key (the README's walkthrough says so)
        ("apprise", "ntfy://my-secret-topic-4f7a", "ntfys://m...a?", ("secret-topic",)),
        ("apprise", "ntfy://ntfy.example.org/ops-alerts-4f7a/two",
         "ntfy://ntfy.example.org/o...a/t...o?", ("ops-alerts", "/two")),
        ("apprise", "ntfys://me:pw@ntfy.example.org/ops-alerts-4f7a",
         "ntfys://me:****@ntfy.example.org/o...a?", ("ops-alerts", ":pw@")),
    ],
)  # fmt: skip
def test_urls_are_shown_with_their_secrets_masked(
    kind: str, url: str, shown: str, hidden: tuple[str, ...]
) -> None:
    masked = mask_url(kind, url)
    assert masked.startswith(shown)
    assert not any(secret in masked for secret in hidden)


def hook(url: str, **fields: Any) -> Channel:
    return Channel(name="hook", kind="webhook", url=url, **fields)


async def test_a_webhook_is_signed_and_carries_its_idempotency_key() -> None:
    with receiver() as rx:
        async with httpx.AsyncClient() as client:
            channel = hook(rx.url, secret="topsecret", headers={"X-Team": "ops"})
            outcome = await send(channel, {"a": 1}, key="notify:1:2", http=client, timeout=5)
    assert outcome.ok and outcome.response_code == 200
    (got,) = rx.requests
    expected = "sha256=" + hmac.new(b"topsecret", got.raw, hashlib.sha256).hexdigest()
    assert got.headers["x-fleetprobe-signature"] == expected == sign("topsecret", got.raw)
    assert got.headers["idempotency-key"] == "notify:1:2"
    assert got.headers["x-team"] == "ops"
    assert got.body == {"a": 1}


async def test_a_failing_receiver_is_data_not_an_exception(closed_port_url: str) -> None:
    with receiver(plan=[503]) as rx:
        async with httpx.AsyncClient() as client:
            refused = await send(hook(closed_port_url), {}, key="k", http=client, timeout=2)
            unavailable = await send(hook(rx.url), {}, key="k", http=client, timeout=2)
    assert not refused.ok and refused.response_code is None and refused.error
    assert "127.0.0.1" not in (refused.error or "")  # no URL in what is stored
    assert (unavailable.ok, unavailable.response_code, unavailable.error) == (
        False,
        503,
        "HTTP 503",
    )
    assert "signature" not in str(rx.requests[0].headers)  # no secret: no signature


async def test_an_invalid_apprise_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    from jobs.alerts.senders import check_apprise_url

    secret_url = "slack://hunter2-token-abc"  # Apprise itself would log this one
    channel = Channel(name="chat", kind="apprise", url=secret_url)
    with caplog.at_level("DEBUG"):
        with pytest.raises(ValueError):
            check_apprise_url(secret_url)
        async with alert_client(2) as client:
            outcome = await send(channel, {"title": "t", "text": "x"}, key="k", http=client,
                                 timeout=2)  # fmt: skip
    assert not outcome.ok and outcome.error == "not a valid Apprise URL"
    assert "hunter2" not in caplog.text and "token-abc" not in caplog.text
