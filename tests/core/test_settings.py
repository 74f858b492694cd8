"""Settings: read once from the environment, typed, validated, with the seeds' defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings, shared_feed_note


def test_defaults_are_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NATS_URL",
        "DATABASE_URL",
        "MONITOR_PERIOD_SECONDS",
        "NATS_SUBJECT",
        "NATS_TIMEOUT",
        "TASK_ID",
        "LOG_LEVEL",
        "WEB_PORT",
        "EVENTS_SUBJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.monitor_period_seconds == 3600
    assert s.database_url == "sqlite+aiosqlite:///./monitoring.db"
    assert s.nats_subject == "rec.control"
    assert s.nats_timeout == 2.0
    assert s.task_id == "task01"
    assert s.events_subject == "items.updates"
    assert s.web_port == 8002
    assert s.log_level == "INFO"


def test_environment_overrides_are_parsed_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_PERIOD_SECONDS", "60")
    monkeypatch.setenv("NATS_URL", "nats://10.0.0.5:4333")
    monkeypatch.setenv("NATS_TIMEOUT", "0.5")
    monkeypatch.setenv("log_level", "DEBUG")
    s = Settings()
    assert s.monitor_period_seconds == 60
    assert s.nats_url == "nats://10.0.0.5:4333"
    assert s.nats_timeout == 0.5
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONITOR_PERIOD_SECONDS", "0"),
        ("MONITOR_PERIOD_SECONDS", "soon"),
        ("NATS_TIMEOUT", "-1"),
        ("LOG_LEVEL", "LOUD"),
        ("HTTP_ENGINE", "curl"),
        ("PROBE_TIMEOUT_SECONDS", "500"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert name in str(err.value)


def test_a_default_timeout_above_the_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="exceeds PROBE_MAX_TIMEOUT_SECONDS"):
        Settings(PROBE_TIMEOUT_SECONDS=30, PROBE_MAX_TIMEOUT_SECONDS=20)  # type: ignore[call-arg]


def test_ack_wait_outlives_the_longest_task() -> None:
    s = Settings(PROBE_MAX_TIMEOUT_SECONDS=90, NATS_TIMEOUT=2)  # type: ignore[call-arg]
    assert s.ack_wait_seconds > s.longest_task_seconds >= 90


def test_the_instance_prefix_is_applied_once_when_settings_are_validated_again() -> None:
    s = Settings(FLEETPROBE_INSTANCE="site-b", JOBS_STREAM="JOBS")  # type: ignore[call-arg]
    again = Settings.model_validate(s.model_dump(by_alias=True))
    assert (again.jobs_stream, again.jobs_subject, again.leader_bucket) == (
        "site-b_JOBS",
        "site-b.fleetprobe.jobs",
        "site-b_fleetprobe_leader",
    )
    assert again.jobs_durable == s.jobs_durable == "site-b-fleetprobe-workers"
    assert again.metrics_subject == "site-b.fleetprobe.metrics"


@pytest.mark.parametrize(
    ("instance", "events", "told"),
    [
        ("", "items.updates", False),  # one installation, the seed's feed
        ("site-b", "items.updates", True),  # its own queue, a shared subject
        ("site-b", "site-b.items.updates", False),
        ("", "mine.updates", False),
    ],
)
def test_a_named_installation_on_the_default_feed_is_told_what_it_shares(
    instance: str, events: str, told: bool
) -> None:
    """Information, no longer a warning: other installations' events are dropped (each
    carries its installation's id); only outside messages reach every installation."""
    settings = Settings(FLEETPROBE_INSTANCE=instance, EVENTS_SUBJECT=events)  # type: ignore[call-arg]
    said = shared_feed_note(settings)
    assert (said is not None) == told
    if said is not None:
        assert "dropped" in said and "nats.inbound" in said
        assert "EVENTS_SUBJECT" in said and f"{instance}.items.updates" in said
