"""Outage lines: one when it starts, then backing off to one every N seconds with a count,
one when it ends (pure, driven by a fake clock)."""

from __future__ import annotations

import pytest

from core.outage import OutageLog


@pytest.mark.parametrize(
    ("events", "lines"),
    [
        # (time, "fail"|"ok") -> the lines said, in order
        ([(0, "fail")], ["x unavailable error=e"]),
        ([(0, "ok")], []),
        (
            [(0, "fail"), (1, "fail"), (1.5, "fail"), (2, "fail"), (3, "ok")],
            [
                "x unavailable error=e",
                "x still unavailable failures=4 for_s=2 error=e",
                "x back failures=4 after_s=3",
            ],
        ),
        (  # gaps double from 2 s to the cap of 5 s
            [(t, "fail") for t in range(0, 16)],
            [
                "x unavailable error=e",
                "x still unavailable failures=3 for_s=2 error=e",
                "x still unavailable failures=7 for_s=6 error=e",
                "x still unavailable failures=12 for_s=11 error=e",
            ],
        ),
        (  # a second outage starts over (count and backoff)
            [(0, "fail"), (1, "ok"), (10, "fail"), (12, "fail"), (13, "ok")],
            [
                "x unavailable error=e",
                "x back failures=1 after_s=1",
                "x unavailable error=e",
                "x still unavailable failures=2 for_s=2 error=e",
                "x back failures=2 after_s=3",
            ],
        ),
    ],
)
def test_an_outage_is_said_at_its_start_rarely_while_it_lasts_and_at_its_end(
    events: list[tuple[float, str]], lines: list[str]
) -> None:
    now = [0.0]
    outage = OutageLog("x", every=5, first=2, clock=lambda: now[0])
    said = []
    for t, what in events:
        now[0] = t
        line = outage.failed("e") if what == "fail" else outage.recovered()
        if line is not None:
            said.append(line)
    assert said == lines


def test_a_thousand_failures_a_second_make_a_handful_of_lines() -> None:
    now = [0.0]
    outage = OutageLog("x", every=30, first=2, clock=lambda: now[0])
    said = 0
    for i in range(60_000):  # 60 s at 1,000 failures a second
        now[0] = i / 1000
        said += outage.failed("e") is not None
    assert said == 5  # at 0, 2, 6, 14 and 30 s (gaps 2, 4, 8, 16, then 30: next at 60 s)
    assert outage.failures == 60_000 and outage.outages == 1
