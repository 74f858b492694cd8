"""The stored form of a device's health (jobs.probe.health.encode_health/decode_health,
msgspec): every Health comes back equal, from its own text and from the document the
code before it stored (pydantic's dump in a JSON column, read by migration 0005 as text);
what is not a Health is refused.  Pure: no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pydantic import TypeAdapter

from jobs.probe.conditions import Outcome
from jobs.probe.health import decode_health, encode_health
from jobs.probe.state import Health, Observation, State, Thresholds, pause, replay, stale, step
from storage.types import JSONText

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def results(outcomes: str, late: tuple[int, ...] = ()) -> list[Observation]:
    """'u' up, 'g' degraded, 'd' down, one a minute from T0 (µs kept); ``late``: those
    indexes come last, out of slot order."""
    kinds = {"u": Outcome.UP, "g": Outcome.DEGRADED, "d": Outcome.DOWN}
    made = [
        Observation(kinds[o], T0 + timedelta(minutes=n, microseconds=7), f"probe:1:{n}", "why")
        for n, o in enumerate(outcomes)
    ]
    return [r for i, r in enumerate(made) if i not in late] + [made[i] for i in late]


def folded(outcomes: str, late: tuple[int, ...] = ()) -> Health:
    health = Health.new(T0)
    for r in results(outcomes, late):
        health, _ = step(health, r, Thresholds(3, 2))
    return health


CASES = {
    "new": Health.new(T0),
    "new, paused": Health.new(T0, State.PAUSED),
    "one result": folded("u"),
    "failing, not down yet": folded("uudd"),
    "down": folded("uuddd"),
    "degraded": folded("uug"),
    "window full and folded out (floor, base)": folded("ud" * 15 + "ddd"),
    "late results sorted in": folded("uuuduudu", late=(3, 5)),
    "stale: unknown after a gap": stale(folded("uu"), T0 + timedelta(hours=1), 60)[0],
    "paused": pause(folded("uu"), T0 + timedelta(minutes=5))[0],
    "replayed": replay(Health.new(T0), results("uddduu"), Thresholds())[0],
}


@pytest.mark.parametrize("health", CASES.values(), ids=list(CASES))
def test_a_health_comes_back_equal_from_its_text(health: Health) -> None:
    text = encode_health(health)
    assert isinstance(text, str)
    assert decode_health(text) == health
    assert decode_health(text.encode()) == health


@pytest.mark.parametrize("health", CASES.values(), ids=list(CASES))
def test_the_document_stored_before_reads_as_the_same_health(health: Health) -> None:
    before = json.dumps(TypeAdapter(Health).dump_python(health, mode="json"))
    assert decode_health(before) == health
    # The same document, without pydantic's spaces.
    assert json.loads(encode_health(health)) == json.loads(before)


@pytest.mark.parametrize(
    "text",
    [
        "{}",  # no field
        "[]",
        '{"state": "sleeping", "since": "2026-03-01T12:00:00Z", "consecutive_failures": 0,'
        ' "consecutive_successes": 0, "base": {"state": "up", "since": "2026-03-01T12:00:00Z"}}',
        '{"state": "up", "since": "yesterday", "consecutive_failures": 0,'
        ' "consecutive_successes": 0, "base": {"state": "up", "since": "2026-03-01T12:00:00Z"}}',
        "not json",
    ],
)
def test_what_is_not_a_health_is_refused(text: str) -> None:
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        decode_health(text)


@pytest.mark.parametrize(
    ("value", "bound"),
    [
        (None, None),
        ('{"a": 1}', '{"a": 1}'),  # text: as it is
        ({"a": [1, None]}, '{"a": [1, null]}'),  # a dict: as the JSON column stored it
        ([], "[]"),
    ],
)
def test_json_text_binds_text_as_it_is_and_encodes_the_rest(value: object, bound: str) -> None:
    from sqlalchemy.dialects import sqlite

    assert JSONText().process_bind_param(value, sqlite.dialect()) == bound
