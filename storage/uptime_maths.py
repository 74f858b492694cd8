"""Uptime and latency maths, pure: no I/O, ``now`` and every row passed in.

- :func:`rollup_rows`: stored check rows summed per (device, hour) and (device, day), the
  rows :mod:`storage.rollups` adds into ``check_rollups``.
- :func:`parse_window`: ``"30d"`` into a :class:`Window` (the one window parser: the
  uptime badge's ``?window=``), :func:`parse_windows`: ``"24h,7d,30d"`` into several.
- :func:`rollup_ranges`: which hourly and daily rollup rows cover a window.
- :func:`state_seconds`: how long a device spent in each state over a window, from its
  ``state_changes``, with the time of its maintenance windows (:func:`merge_periods`)
  counted apart; :func:`shares` turns that into the percentages the API shows.
- :func:`histogram_percentile`: p50/p95 from the summed latency histogram.

Example::

    >>> [w.label for w in parse_windows("24h, 7d")]
    ['24h', '7d']
    >>> histogram_percentile([0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0], 50, max_ms=20.0)
    15.0
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.models import LATENCY_BUCKETS_MS

# The histogram columns of a rollup row, one per bound of LATENCY_BUCKETS_MS and the rest.
BUCKET_COLUMNS: tuple[str, ...] = (
    *(f"lat_le_{ms}" for ms in LATENCY_BUCKETS_MS),
    "lat_le_inf",
)
# The columns a new result adds to (everything but the key and latency_max_ms).
SUM_COLUMNS: tuple[str, ...] = (
    "checks",
    "up",
    "degraded",
    "down",
    "in_maintenance",
    "latency_count",
    "latency_sum_ms",
    *BUCKET_COLUMNS,
)
OUTCOMES = ("up", "degraded", "down")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
# Windows up to this long (rollups are kept ROLLUP_RETENTION_DAYS, 400 by default).
MAX_WINDOW = timedelta(days=400)
# Windows up to this long are summed from hourly rows; longer ones mostly from daily.
HOURLY_UP_TO = timedelta(days=7)
DEFAULT_WINDOWS = "24h,7d,30d"
MAX_WINDOWS = 10


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return floor_hour(at).replace(hour=0)


def ceil_day(at: datetime) -> datetime:
    day = floor_day(at)
    return day if day == at else day + DAY


def bucket_column(latency_ms: float) -> str:
    """The histogram column a latency falls in (``lat_le_<ms>``: at most that, above the
    bound before)::

    >>> bucket_column(10), bucket_column(10.5), bucket_column(20_000)
    ('lat_le_10', 'lat_le_25', 'lat_le_inf')
    """
    return BUCKET_COLUMNS[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)]


def outcome_of(row: Mapping[str, Any]) -> str:
    """A stored result's outcome; rows from before conditions have none: status_up says."""
    outcome = row.get("outcome")
    if outcome in OUTCOMES:
        return str(outcome)
    return "up" if row["status_up"] else "down"


# A rollup row before anything is added (copied: cheaper than building it per key).
_ZEROS: dict[str, Any] = {
    **dict.fromkeys(SUM_COLUMNS, 0),
    "latency_sum_ms": 0.0,
    "latency_max_ms": 0.0,
}


def _empty(device_id: int, period: str, start: datetime) -> dict[str, Any]:
    return {"device_id": device_id, "period": period, "start": start, **_ZEROS}


def rollup_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check rows summed per (device, ``"h"``, hour) and (device, ``"d"``, day), sorted by
    key (so concurrent upserts lock rows in one order).

    Every result counts in ``checks``; one stored during maintenance counts only in
    ``in_maintenance`` (left out of up/degraded/down and of latency), any other in its
    outcome and, when it has a latency, in the histogram."""
    # Hours first (one dict lookup per row: this runs for every stored result), then
    # each day as the sum of its hours (a copy of the first: a batch mostly holds one
    # hour of a device).
    hours: dict[tuple[int, float], dict[str, Any]] = {}
    for row in rows:
        ts = row["checked_at"].timestamp()
        key = (int(row["device_id"]), ts - ts % 3600)
        acc = hours.get(key)
        if acc is None:
            acc = hours[key] = _empty(key[0], "h", _EPOCH)
        acc["checks"] += 1
        if row.get("in_maintenance"):
            acc["in_maintenance"] += 1
            continue
        acc[outcome_of(row)] += 1
        latency = row.get("latency_ms")
        if latency is not None:
            latency = float(latency)
            acc["latency_count"] += 1
            acc["latency_sum_ms"] += latency
            acc["latency_max_ms"] = max(acc["latency_max_ms"], latency)
            acc[BUCKET_COLUMNS[bisect.bisect_left(LATENCY_BUCKETS_MS, latency)]] += 1
    sums: dict[tuple[int, str, datetime], dict[str, Any]] = {}
    for (device_id, hour_ts), acc in hours.items():
        acc["start"] = start = datetime.fromtimestamp(hour_ts, UTC)
        sums[(device_id, "h", start)] = acc
        day_key = (device_id, "d", start.replace(hour=0))
        day = sums.get(day_key)
        if day is None:
            sums[day_key] = {**acc, "period": "d", "start": day_key[2]}
            continue
        for column in SUM_COLUMNS:
            day[column] += acc[column]
        day["latency_max_ms"] = max(day["latency_max_ms"], acc["latency_max_ms"])
    return [sums[key] for key in sorted(sums)]


@dataclass(frozen=True, slots=True)
class Window:
    """A trailing window: ``label`` as the client wrote it (``"24h"``), its length."""

    label: str
    length: timedelta


_WINDOW = re.compile(r"([1-9][0-9]{0,5})([hd])")


def parse_window(text: str) -> Window:
    """One window, ``<n>h`` or ``<n>d`` (``n`` from 1), at most 400 days; its label is
    ``text``.  Raises ValueError saying what is wrong::

    >>> parse_window("30d")
    Window(label='30d', length=datetime.timedelta(days=30))
    >>> parse_window("1w")
    Traceback (most recent call last):
    ValueError: '1w' is not a window: write <n>h or <n>d (24h, 7d, 30d)
    """
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window: write <n>h or <n>d (24h, 7d, 30d)")
    n, unit = int(match[1]), match[2]
    length = timedelta(hours=n) if unit == "h" else timedelta(days=n)
    if length > MAX_WINDOW:
        raise ValueError(f"{text!r} is longer than the longest window, 400d")
    return Window(text, length)


def parse_windows(text: str) -> list[Window]:
    """``"24h,7d,30d"``: comma-separated windows (:func:`parse_window`, spaces around each
    ignored), at most ten, no repeats.  Raises ValueError saying which entry is wrong::

    >>> parse_windows("24h,90m")
    Traceback (most recent call last):
    ValueError: '90m' is not a window: write <n>h or <n>d (24h, 7d, 30d)
    """
    entries = [part.strip() for part in text.split(",")]
    if not any(entries):
        raise ValueError("no window given: write e.g. 24h,7d,30d")
    windows: list[Window] = []
    for entry in entries:
        window = parse_window(entry)
        if any(w.label == entry for w in windows):
            raise ValueError(f"{entry!r} is given twice")
        windows.append(window)
    if len(windows) > MAX_WINDOWS:
        raise ValueError(f"{len(windows)} windows: at most {MAX_WINDOWS}")
    return windows


@dataclass(frozen=True, slots=True)
class Range:
    """Rollup rows of ``period`` whose ``start`` is in ``[since, until)``."""

    period: str
    since: datetime
    until: datetime


def rollup_ranges(start: datetime, end: datetime) -> list[Range]:
    """The rollup rows that cover ``[start, end)``: hourly rows for windows up to 7 days,
    else daily rows for the whole days inside and hourly rows at both edges.  The hour
    holding ``start`` counts whole (a rollup cannot be split)."""
    first_hour = floor_hour(start)
    if end - start <= HOURLY_UP_TO:
        return [Range("h", first_hour, end)]
    first_day, last_day = ceil_day(start), floor_day(end)
    ranges = [Range("h", first_hour, first_day), Range("d", first_day, last_day)]
    ranges.append(Range("h", last_day, end))
    return [r for r in ranges if r.since < r.until]


# A period of time, [start, end).
Period = tuple[datetime, datetime]
MAINTENANCE = "maintenance"


def merge_periods(periods: Iterable[Period]) -> list[Period]:
    """The periods sorted and made disjoint: overlapping or touching ones joined, empty
    ones dropped::

    >>> t = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(6)]
    >>> [(a.hour, b.hour) for a, b in merge_periods([(t[3], t[5]), (t[0], t[1]), (t[1], t[2]),
    ...                                               (t[4], t[4])])]
    [(0, 2), (3, 5)]
    """
    merged: list[Period] = []
    for since, until in sorted(p for p in periods if p[1] > p[0]):
        if merged and since <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(until, merged[-1][1]))
        else:
            merged.append((since, until))
    return merged


class _Covered:
    """How much of disjoint sorted ``periods`` lies before a time (one bisect)."""

    def __init__(self, periods: Sequence[Period]) -> None:
        self.starts = [p[0] for p in periods]
        self.periods = periods
        self.before: list[timedelta] = []  # the length of the periods before each
        total = timedelta(0)
        for since, until in periods:
            self.before.append(total)
            total += until - since

    def until(self, t: datetime) -> timedelta:
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            return timedelta(0)
        since, until = self.periods[i]
        return self.before[i] + min(t, until) - since


@dataclass(frozen=True, slots=True)
class Change:
    """One ``state_changes`` row as the maths sees it."""

    at: datetime
    from_state: str
    to_state: str


def state_seconds(
    start: datetime,
    end: datetime,
    changes: Sequence[Change],
    fallback: tuple[str, datetime] | None = None,
    maintenance: Iterable[Period] = (),
) -> dict[str, float]:
    """Seconds spent in each state over ``[start, end)``.

    ``changes`` are the device's changes up to ``end`` in order (at least the last one at
    or before ``start``, if any).  The state at ``start`` is the last change's ``to`` at
    or before it, else the first later change's ``from``; with no change at all,
    ``fallback`` (the current state and since when, from device_health) holds from its
    ``since`` on, and the time before is unknown.  Unknown without either.

    Time inside ``maintenance`` (the device's maintenance windows, in any order, may
    overlap) counts as ``"maintenance"``, whatever the state was, and in no state."""
    spans: list[tuple[str, datetime, datetime]] = []

    def add(state: str, since: datetime, until: datetime) -> None:
        if until > since:
            spans.append((state, since, until))

    if not changes:
        if fallback is None:
            add("unknown", start, end)
        else:
            state, since = fallback
            begins = min(max(since, start), end)
            add("unknown", start, begins)
            add(state, begins, end)
    else:
        before = [c for c in changes if c.at <= start]
        state = before[-1].to_state if before else changes[0].from_state
        at = start
        for change in changes:
            if change.at <= start:
                continue
            if change.at >= end:
                break
            add(state, at, change.at)
            state, at = change.to_state, change.at
        add(state, at, end)
    inside = merge_periods((max(a, start), min(b, end)) for a, b in maintenance)
    covered = _Covered(inside)
    seconds: dict[str, float] = {}
    for state, since, until in spans:
        left = (until - since) - (covered.until(until) - covered.until(since))
        if left > timedelta(0):
            seconds[state] = seconds.get(state, 0.0) + left.total_seconds()
    if inside:
        seconds[MAINTENANCE] = covered.until(end).total_seconds()
    return seconds


@dataclass(frozen=True, slots=True)
class Shares:
    uptime_percent: float | None
    degraded_percent: float | None
    down_percent: float | None
    unknown_seconds: float
    paused_seconds: float
    maintenance_seconds: float = 0.0


def shares(seconds: Mapping[str, float]) -> Shares:
    """Uptime % = (up + degraded) / known time, known = up + degraded + down (paused,
    unknown and maintenance time are left out); None when nothing is known::

    >>> shares({"up": 90.0, "down": 10.0, "paused": 50.0}).uptime_percent
    90.0
    """
    up, degraded, down = (seconds.get(s, 0.0) for s in OUTCOMES)
    known = up + degraded + down

    def pct(part: float) -> float | None:
        return round(part / known * 100, 4) if known > 0 else None

    return Shares(
        uptime_percent=pct(up + degraded),
        degraded_percent=pct(degraded),
        down_percent=pct(down),
        unknown_seconds=round(seconds.get("unknown", 0.0), 3),
        paused_seconds=round(seconds.get("paused", 0.0), 3),
        maintenance_seconds=round(seconds.get(MAINTENANCE, 0.0), 3),
    )


def histogram_percentile(counts: Sequence[int], p: float, max_ms: float) -> float | None:
    """The ``p`` th percentile (0 < p <= 100) of latencies counted in the buckets of
    :data:`LATENCY_BUCKETS_MS` (one count per :data:`BUCKET_COLUMNS`), interpolated
    linearly inside its bucket; the top bucket ends at ``max_ms`` (the exact maximum), so
    no percentile exceeds it.  None for no latency."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = p / 100 * total
    seen = 0
    for i, n in enumerate(counts):
        if n <= 0:
            continue
        if seen + n >= rank:
            lower = float(LATENCY_BUCKETS_MS[i - 1]) if i > 0 else 0.0
            upper = float(LATENCY_BUCKETS_MS[i]) if i < len(LATENCY_BUCKETS_MS) else max_ms
            upper = min(upper, max_ms)
            lower = min(lower, upper)
            return round(lower + (upper - lower) * (rank - seen) / n, 3)
        seen += n
    return round(max_ms, 3)
