"""Uptime maths (pure): rollup sums, windows, the rows that cover a window, time in each
state, percentages and histogram percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from storage.models import LATENCY_BUCKETS_MS, CheckRollup
from storage.uptime_maths import (
    BUCKET_COLUMNS,
    SUM_COLUMNS,
    Change,
    Period,
    Range,
    Window,
    bucket_column,
    histogram_percentile,
    merge_periods,
    outcome_of,
    parse_window,
    parse_windows,
    rollup_ranges,
    rollup_rows,
    shares,
    state_seconds,
)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("latency", "column"),
    [
        (0.0, "lat_le_10"),
        (10.0, "lat_le_10"),
        (10.01, "lat_le_25"),
        (99.9, "lat_le_100"),
        (100.0, "lat_le_100"),
        (2500.0, "lat_le_2500"),
        (10_000.0, "lat_le_10000"),
        (10_000.5, "lat_le_inf"),
        (1e9, "lat_le_inf"),
    ],
)
def test_a_latency_falls_in_the_bucket_of_its_upper_bound(latency: float, column: str) -> None:
    assert bucket_column(latency) == column


def test_the_sums_name_every_column_of_the_rollup_table() -> None:
    table = CheckRollup.__table__  # type: ignore[attr-defined]
    key = {"device_id", "period", "start"}
    assert set(table.c.keys()) == key | set(SUM_COLUMNS) | {"latency_max_ms"}
    assert len(BUCKET_COLUMNS) == len(LATENCY_BUCKETS_MS) + 1


@pytest.mark.parametrize(
    ("row", "outcome"),
    [
        ({"outcome": "degraded", "status_up": True}, "degraded"),
        ({"outcome": "down", "status_up": False}, "down"),
        ({"outcome": None, "status_up": True}, "up"),  # a row stored before conditions
        ({"outcome": None, "status_up": False}, "down"),
        ({"status_up": True}, "up"),
    ],
)
def test_the_outcome_is_the_rows_or_else_read_from_status_up(
    row: dict[str, Any], outcome: str
) -> None:
    assert outcome_of(row) == outcome


def result(
    device: int, when: datetime, outcome: str | None, latency: float | None, maint: bool = False
) -> dict[str, Any]:
    return {
        "device_id": device,
        "checked_at": when,
        "outcome": outcome,
        "status_up": outcome != "down",
        "latency_ms": latency,
        "in_maintenance": maint,
    }


def test_rows_are_summed_per_device_hour_and_day() -> None:
    rows = [
        result(1, at(0.1), "up", 5.0),
        result(1, at(0.9), "degraded", 700.0),
        result(1, at(1.5), "down", None),  # the next hour, same day
        result(2, at(0.2), None, 30.0),  # status_up decides
        result(1, at(0.3), "down", 20.0, maint=True),  # counted apart
    ]
    sums = {(r["device_id"], r["period"], r["start"]): r for r in rollup_rows(rows)}
    day = T0.replace(hour=0)
    assert sorted(sums) == [
        (1, "d", day),
        (1, "h", T0),
        (1, "h", at(1)),
        (2, "d", day),
        (2, "h", T0),
    ]
    hour = sums[(1, "h", T0)]
    assert (hour["checks"], hour["up"], hour["degraded"], hour["down"]) == (3, 1, 1, 0)
    assert hour["in_maintenance"] == 1
    assert (hour["latency_count"], hour["latency_sum_ms"], hour["latency_max_ms"]) == (
        2,
        705.0,
        700.0,
    )
    assert hour["lat_le_10"] == 1 and hour["lat_le_1000"] == 1 and hour["lat_le_25"] == 0
    whole_day = sums[(1, "d", day)]
    assert (whole_day["checks"], whole_day["down"], whole_day["latency_count"]) == (4, 1, 2)
    assert sums[(2, "h", T0)]["up"] == 1 and sums[(2, "h", T0)]["lat_le_50"] == 1


def test_a_result_in_another_time_zone_lands_in_its_utc_hour_and_day() -> None:
    # 00:30 on the 11th at UTC+1 is 23:30 on the 10th in UTC
    local = datetime(2026, 3, 11, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    [day, hour] = [r["start"] for r in rollup_rows([result(1, local, "up", 1.0)])]
    assert hour == datetime(2026, 3, 10, 23, tzinfo=UTC)
    assert day == datetime(2026, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("1h", H),
        ("24h", 24 * H),
        ("7d", 7 * D),
        ("30d", 30 * D),
        ("400d", 400 * D),
        ("9600h", 400 * D),
    ],
)
def test_one_window_is_hours_or_days_labelled_as_written(text: str, length: timedelta) -> None:
    assert parse_window(text) == Window(text, length)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "'' is not a window"),
        ("0h", "'0h' is not a window"),
        ("1w", "'1w' is not a window"),
        ("30", "'30' is not a window"),
        ("d", "'d' is not a window"),
        ("1.5d", "'1.5d' is not a window"),
        ("-1h", "'-1h' is not a window"),
        ("7D", "'7D' is not a window"),
        (" 7d", "' 7d' is not a window"),  # one window is taken as written
        ("24h,7d", "'24h,7d' is not a window"),
        ("401d", "'401d' is longer than the longest window, 400d"),
        ("9601h", "'9601h' is longer than the longest window"),
    ],
)
def test_one_bad_window_is_refused_saying_what(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_window(text)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("24h,7d,30d", [("24h", 24 * H), ("7d", 7 * D), ("30d", 30 * D)]),
        (" 1h , 400d ", [("1h", H), ("400d", 400 * D)]),
        ("9600h", [("9600h", 400 * D)]),
    ],
)
def test_windows_are_hours_or_days(text: str, labels: list[tuple[str, timedelta]]) -> None:
    assert parse_windows(text) == [Window(label, length) for label, length in labels]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no window"),
        (" , ", "no window"),
        ("24", "'24' is not a window"),
        ("90m", "'90m' is not a window"),
        ("0h", "'0h' is not a window"),
        ("-1d", "'-1d' is not a window"),
        ("1.5d", "'1.5d' is not a window"),
        ("7D", "'7D' is not a window"),
        ("24h,,7d", "'' is not a window"),
        ("401d", "longer than the longest window, 400d"),
        ("9601h", "longer than the longest window"),
        ("24h,24h", "given twice"),
        (",".join(f"{n}h" for n in range(1, 12)), "at most 10"),
    ],
)
def test_a_bad_window_is_refused_saying_which(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_windows(text)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("start", "end", "ranges"),
    [
        # up to 7 days: hourly rows, the first hour counted whole
        (at(0.5), at(24.5), [Range("h", T0, at(24.5))]),
        (at(0), at(7 * 24), [Range("h", T0, at(7 * 24))]),
        # longer: hourly at both edges, daily in between
        (
            at(0.5),
            at(0.5) + 30 * D,
            [
                Range("h", T0, at(12)),
                Range("d", at(12), at(12) + 29 * D),
                Range("h", at(12) + 29 * D, at(0.5) + 30 * D),
            ],
        ),
        # starting and ending at midnight: no hourly edge
        (at(12), at(12) + 8 * D, [Range("d", at(12), at(12) + 8 * D)]),
    ],
)
def test_a_window_is_covered_by_hourly_and_daily_rows(
    start: datetime, end: datetime, ranges: list[Range]
) -> None:
    assert rollup_ranges(start, end) == ranges


def ch(hours: float, frm: str, to: str) -> Change:
    return Change(at(hours), frm, to)


@pytest.mark.parametrize(
    ("changes", "fallback", "seconds"),
    [
        # no change, no health row: all unknown
        ([], None, {"unknown": 10 * 3600}),
        # no change: the health row holds from its since on
        ([], ("up", at(-5)), {"up": 10 * 3600}),
        ([], ("up", at(4)), {"unknown": 4 * 3600, "up": 6 * 3600}),
        ([], ("down", at(20)), {"unknown": 10 * 3600}),
        # the last change before the window gives its starting state
        ([ch(-3, "unknown", "up")], None, {"up": 10 * 3600}),
        (
            [ch(-3, "unknown", "up"), ch(2, "up", "down"), ch(3, "down", "up")],
            None,
            {"up": 9 * 3600, "down": 3600},
        ),
        # no change before: the first one's from state
        ([ch(4, "down", "up")], None, {"down": 4 * 3600, "up": 6 * 3600}),
        # a change exactly at the start counts from the start
        ([ch(0, "up", "paused")], None, {"paused": 10 * 3600}),
        # degraded, paused and a change at or after the end
        (
            [ch(1, "up", "degraded"), ch(5, "degraded", "paused"), ch(10, "paused", "up")],
            None,
            {"up": 3600, "degraded": 4 * 3600, "paused": 5 * 3600},
        ),
    ],
)
def test_time_in_each_state_is_integrated_between_changes(
    changes: list[Change], fallback: tuple[str, datetime] | None, seconds: dict[str, float]
) -> None:
    assert state_seconds(at(0), at(10), changes, fallback) == seconds


def span(a: float, b: float) -> Period:
    return (at(a), at(b))


@pytest.mark.parametrize(
    ("periods", "merged"),
    [
        ([], []),
        ([span(1, 2)], [span(1, 2)]),
        ([span(3, 4), span(1, 2)], [span(1, 2), span(3, 4)]),  # sorted
        ([span(1, 3), span(2, 4)], [span(1, 4)]),  # overlapping
        ([span(1, 2), span(2, 3)], [span(1, 3)]),  # touching
        ([span(1, 5), span(2, 3)], [span(1, 5)]),  # one inside another
        ([span(2, 2), span(3, 1)], []),  # empty or backwards: dropped
    ],
)
def test_periods_are_merged_into_disjoint_sorted_ones(
    periods: list[Period], merged: list[Period]
) -> None:
    assert merge_periods(periods) == merged


UP_THEN_DOWN = [ch(-3, "unknown", "up"), ch(4, "up", "down"), ch(6, "down", "up")]


@pytest.mark.parametrize(
    ("changes", "fallback", "maintenance", "seconds"),
    [
        # no window: as before
        (UP_THEN_DOWN, None, [], {"up": 8 * 3600, "down": 2 * 3600}),
        # the whole outage in maintenance: left out of down, counted apart
        (UP_THEN_DOWN, None, [span(4, 6)], {"up": 8 * 3600, "maintenance": 2 * 3600}),
        # a window across a change takes from both states
        (
            UP_THEN_DOWN,
            None,
            [span(3, 5)],
            {"up": 7 * 3600, "down": 3600, "maintenance": 2 * 3600},
        ),
        # overlapping windows (two windows of one device) count once
        (
            UP_THEN_DOWN,
            None,
            [span(3, 5), span(4, 6)],
            {"up": 7 * 3600, "maintenance": 3 * 3600},
        ),
        # clipped to the window asked for
        (
            UP_THEN_DOWN,
            None,
            [span(-5, 1), span(9, 20)],
            {"up": 6 * 3600, "down": 2 * 3600, "maintenance": 2 * 3600},
        ),
        # outside the window asked for: nothing
        (UP_THEN_DOWN, None, [span(-5, -1), span(10, 12)], {"up": 8 * 3600, "down": 2 * 3600}),
        # unknown and paused time in a window is maintenance too
        (
            [],
            ("up", at(4)),
            [span(2, 6)],
            {"unknown": 2 * 3600, "up": 4 * 3600, "maintenance": 4 * 3600},
        ),
        ([ch(-1, "up", "paused")], None, [span(0, 10)], {"maintenance": 10 * 3600}),
        # the window's edges to the second
        (
            UP_THEN_DOWN,
            None,
            [(at(4), at(4) + timedelta(seconds=90))],
            {"up": 8 * 3600, "down": 2 * 3600 - 90, "maintenance": 90},
        ),
    ],
)
def test_maintenance_time_is_left_out_of_every_state(
    changes: list[Change],
    fallback: tuple[str, datetime] | None,
    maintenance: list[Period],
    seconds: dict[str, float],
) -> None:
    assert state_seconds(at(0), at(10), changes, fallback, maintenance) == seconds


def test_an_outage_in_maintenance_does_not_lower_uptime() -> None:
    without = shares(state_seconds(at(0), at(10), UP_THEN_DOWN))
    during = shares(state_seconds(at(0), at(10), UP_THEN_DOWN, maintenance=[span(4, 6)]))
    assert without.uptime_percent == 80.0 and without.maintenance_seconds == 0.0
    assert during.uptime_percent == 100.0 and during.down_percent == 0.0
    assert during.maintenance_seconds == 2 * 3600


@pytest.mark.parametrize(
    ("seconds", "uptime", "degraded", "down", "unknown", "paused"),
    [
        ({"up": 90, "down": 10}, 90.0, 0.0, 10.0, 0, 0),
        ({"up": 50, "degraded": 25, "down": 25}, 75.0, 25.0, 25.0, 0, 0),
        ({"up": 30, "unknown": 60, "paused": 10}, 100.0, 0.0, 0.0, 60, 10),
        ({"unknown": 60, "paused": 10}, None, None, None, 60, 10),
        ({}, None, None, None, 0, 0),
        ({"up": 2, "down": 1}, 66.6667, 0.0, 33.3333, 0, 0),
    ],
)
def test_percentages_are_of_the_known_time(
    seconds: dict[str, float],
    uptime: float | None,
    degraded: float | None,
    down: float | None,
    unknown: float,
    paused: float,
) -> None:
    s = shares(seconds)
    assert (s.uptime_percent, s.degraded_percent, s.down_percent) == (uptime, degraded, down)
    assert (s.unknown_seconds, s.paused_seconds) == (unknown, paused)


def hist(**counts: int) -> list[int]:
    return [counts.get(c, 0) for c in BUCKET_COLUMNS]


@pytest.mark.parametrize(
    ("counts", "p", "max_ms", "value"),
    [
        (hist(), 50, 0.0, None),
        # four in (10, 25]: the median halfway, but never above the maximum
        (hist(lat_le_25=4), 50, 25.0, 17.5),
        (hist(lat_le_25=4), 50, 20.0, 15.0),
        (hist(lat_le_25=4), 100, 22.0, 22.0),
        # first bucket starts at 0
        (hist(lat_le_10=10), 50, 10.0, 5.0),
        # across buckets: 50 at <= 10, 50 in (100, 250]
        (hist(lat_le_10=50, lat_le_250=50), 50, 240.0, 10.0),
        (hist(lat_le_10=50, lat_le_250=50), 95, 250.0, 235.0),
        # the open top bucket ends at the exact maximum
        (hist(lat_le_inf=2), 50, 30_000.0, 20_000.0),
        (hist(lat_le_10=99, lat_le_inf=1), 95, 12_000.0, 9.596),
    ],
)
def test_percentiles_are_interpolated_inside_their_bucket(
    counts: list[int], p: float, max_ms: float, value: float | None
) -> None:
    assert histogram_percentile(counts, p, max_ms) == value
