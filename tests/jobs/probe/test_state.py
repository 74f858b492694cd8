"""The health state machine: thresholds, flapping, degraded, late and duplicate results,
unknown after missed slots, pause and resume."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

import jobs.probe.state
from jobs.probe.conditions import Outcome
from jobs.probe.state import (
    WINDOW,
    Health,
    Observation,
    State,
    Thresholds,
    Transition,
    next_interval,
    pause,
    quiet_since,
    replay,
    resume,
    stale,
    step,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 60
CODE = {"U": Outcome.UP, "G": Outcome.DEGRADED, "D": Outcome.DOWN}


def slot(i: int) -> datetime:
    return T0 + timedelta(seconds=INTERVAL * i)


def result(i: int, code: str) -> Observation:
    cause = "[STATUS] < 500 (503)" if code == "D" else None
    return Observation(CODE[code], slot(i), f"probe:1:{i}", cause)


def results(codes: str) -> list[Observation]:
    """``"UUD"``: up at slot 1, up at slot 2, down at slot 3."""
    return [result(i, code) for i, code in enumerate(codes, start=1)]


def run(codes: str, thresholds: Thresholds) -> tuple[Health, list[State], list[Transition]]:
    health, states, changes = Health.new(T0), [], []
    for r in results(codes):
        health, change = step(health, r, thresholds)
        states.append(health.state)
        if change is not None:
            changes.append(change)
    return health, states, changes


u, g, d, k = State.UP, State.DEGRADED, State.DOWN, State.UNKNOWN


@pytest.mark.parametrize(
    ("failure", "success", "codes", "states"),
    [
        # threshold 1: the first result decides, every flip is a change
        (1, 1, "D", [d]),
        (1, 1, "U", [u]),
        (1, 1, "DUDU", [d, u, d, u]),
        # the default 3/1: a new device's first failures leave it unknown (as Gatus)
        (3, 1, "DDD", [k, k, d]),
        (3, 1, "DDU", [k, k, u]),
        (3, 1, "UDDD", [u, u, u, d]),
        (3, 1, "UDDDDU", [u, u, u, d, d, u]),
        # flapping under the threshold never goes down
        (3, 1, "UDDUDDUDD", [u] * 9),
        (2, 1, "UDUDUD", [u] * 6),
        # success threshold 2: one pass between failures does not bring it up
        (3, 2, "DDDUDUU", [k, k, d, d, d, d, u]),
        (1, 2, "U", [k]),
        (1, 2, "UU", [k, u]),
        (1, 3, "DUUDUUU", [d, d, d, d, d, d, u]),
        # degraded passes: up and degraded follow the latest passing result at once
        (3, 1, "G", [g]),
        (3, 1, "UGUG", [u, g, u, g]),
        (3, 1, "GDDDG", [g, g, g, d, g]),
        (2, 1, "GDDU", [g, g, d, u]),
        (3, 1, "UGDGD", [u, g, g, g, g]),
        # coming back from down, the latest passing result says up or degraded
        (1, 2, "DGU", [d, d, u]),
        (1, 2, "DUG", [d, d, g]),
        (1, 2, "DGD", [d, d, d]),
        (3, 2, "UUDG", [k, u, u, g]),  # up -> degraded needs no success streak
    ],
)
def test_state_after_each_result(
    failure: int, success: int, codes: str, states: list[State]
) -> None:
    assert run(codes, Thresholds(failure, success))[1] == states


def test_device_goes_down_after_three_failures_once_with_the_failing_cause() -> None:
    health, _, changes = run("UDDDDD", Thresholds())
    assert changes == [
        Transition(k, u, slot(1), None, "probe:1:1"),
        Transition(u, d, slot(4), "[STATUS] < 500 (503)", "probe:1:4"),
    ]
    assert (health.state, health.since, health.consecutive_failures) == (d, slot(4), 5)
    assert changes[1].payload(7) == {
        "device_id": 7,
        "from": "up",
        "to": "down",
        "since": "2026-03-01T12:04:00Z",
        "cause": "[STATUS] < 500 (503)",
    }


def test_streaks_count_and_reset() -> None:
    health, _, _ = run("UUUDD", Thresholds())
    assert (health.consecutive_failures, health.consecutive_successes) == (2, 0)
    health, _, _ = run("DDDUU", Thresholds(3, 5))
    assert (health.state, health.consecutive_failures, health.consecutive_successes) == (d, 0, 2)


def test_every_change_to_health_raises_its_revision() -> None:
    health, _, _ = run("UUD", Thresholds())
    assert health.revision == 3
    assert (health.last_slot_at, health.last_run_key) == (slot(3), "probe:1:3")


def test_the_same_run_twice_is_one_result() -> None:
    health, _, _ = run("UDD", Thresholds())
    for again in (result(3, "D"), result(2, "D")):
        assert step(health, again, Thresholds()) == (health, None)
    assert step(health, result(3, "D"), Thresholds())[0] is health


def test_a_second_result_for_the_same_slot_counts() -> None:
    health, _, _ = run("UDD", Thresholds())
    manual = Observation(Outcome.DOWN, slot(3), "manual:1:x", "refused")
    health, change = step(health, manual, Thresholds())
    assert change == Transition(u, d, slot(3), "refused", "manual:1:x")


def test_a_late_pass_undoes_a_down_that_slot_order_does_not_give() -> None:
    # Slots 1, 2, 4 fail and arrive; slot 3 passed but arrives last (a slow worker).
    health = Health.new(T0)
    for r in (result(1, "U"), result(2, "D"), result(3, "D")):
        health, _ = step(health, r, Thresholds(2, 1))
    assert health.state is d
    late = result(0, "U")  # older than everything: its place is first, nothing changes
    assert step(health, late, Thresholds(2, 1))[1] is None
    health = Health.new(T0)
    for r in (result(1, "D"), result(2, "D"), result(4, "D")):
        health, _ = step(health, r, Thresholds(3, 1))
    assert (health.state, health.since) == (d, slot(4))
    health, change = step(health, result(3, "U"), Thresholds(3, 1))
    # In slot order D D U D: up since slot 3, one failure since; dated at the newest result.
    assert change == Transition(d, u, slot(4), None, "probe:1:3")
    assert (health.state, health.since, health.consecutive_failures) == (u, slot(4), 1)


def test_a_late_failure_completes_a_streak_in_slot_order() -> None:
    health = Health.new(T0)
    for r in (result(1, "U"), result(3, "D")):
        health, _ = step(health, r, Thresholds(2, 1))
    health, change = step(health, result(2, "D"), Thresholds(2, 1))
    assert change == Transition(u, d, slot(3), "[STATUS] < 500 (503)", "probe:1:2")
    assert health.last_slot_at == slot(3)


def test_a_late_result_that_changes_nothing_keeps_state_and_since() -> None:
    health = Health.new(T0)
    for r in (result(1, "U"), result(3, "U")):
        health, _ = step(health, r, Thresholds())
    health, change = step(health, result(2, "D"), Thresholds())
    assert change is None
    assert (health.state, health.since, health.consecutive_successes) == (u, slot(1), 1)


@pytest.mark.parametrize(
    ("failure", "success", "codes"),
    [(3, 1, "UDDDU"), (2, 2, "DDUUD"), (1, 1, "UDUDG"), (3, 2, "GDDUD"), (2, 1, "DGDDU")],
)
def test_any_arrival_order_gives_what_slot_order_gives(
    failure: int, success: int, codes: str
) -> None:
    thresholds = Thresholds(failure, success)
    in_order, _, _ = run(codes, thresholds)
    for order in itertools.permutations(results(codes)):
        health = Health.new(T0)
        for r in order:
            health, _ = step(health, r, thresholds)
        assert (health.state, health.consecutive_failures, health.consecutive_successes) == (
            in_order.state,
            in_order.consecutive_failures,
            in_order.consecutive_successes,
        ), [r.run_key for r in order]
        assert health.recent == in_order.recent


def test_a_result_older_than_the_window_no_longer_counts() -> None:
    health, _, _ = run("U" * (WINDOW + 2), Thresholds(1, 1))
    assert len(health.recent) == WINDOW
    assert health.floor == slot(2)
    for too_late in (result(2, "D"), result(1, "D")):
        assert step(health, too_late, Thresholds(1, 1)) == (health, None)
    # Still inside the window: sorted in, but the passes after it in slot order keep it up.
    assert step(health, result(3, "D"), Thresholds(1, 1))[1] is None


def test_a_window_folded_past_still_gives_the_slot_order_state() -> None:
    codes = "DDD" + "U" * WINDOW + "DD"
    health, _, _ = run(codes, Thresholds(3, 1))
    assert len(health.recent) == WINDOW
    assert (health.state, health.consecutive_failures) == (u, 2)
    health, change = step(health, result(len(codes) + 1, "D"), Thresholds(3, 1))
    assert change is not None and change.to_state is d


def test_a_late_result_is_folded_from_the_tally_before_the_window() -> None:
    # Down at slot 1, then passes, but success_threshold 20 is more than the window holds:
    # only the tally kept before the window knows the device is down with passes counting.
    thresholds = Thresholds(1, 20)
    codes = "D" + "U" * 18
    every = results(codes)
    health = Health.new(T0)
    for r in every[:9] + every[10:]:  # slot 10 arrives last
        health, _ = step(health, r, thresholds)
    assert health.floor is not None and health.floor < slot(10)
    health, change = step(health, every[9], thresholds)
    expected, _, _ = run(codes, thresholds)
    assert change is None
    assert (health.state, health.consecutive_successes) == (d, 18)
    assert (health.tally, health.recent) == (expected.tally, expected.recent)


def test_replay_folds_results_in_slot_order_whatever_their_order() -> None:
    shuffled = [result(3, "D"), result(1, "U"), result(4, "D"), result(2, "D")]
    health, changes = replay(Health.new(T0), shuffled, Thresholds())
    assert [(c.from_state, c.to_state, c.at) for c in changes] == [(k, u, slot(1)), (u, d, slot(4))]
    assert health.state is d


def test_unknown_after_two_intervals_without_a_result() -> None:
    health, _, _ = run("U", Thresholds())
    assert stale(health, slot(3), INTERVAL) == (health, None)  # slot 3 may still be on its way
    later = slot(3) + timedelta(milliseconds=1)
    gone, change = stale(health, later, INTERVAL)
    assert change == Transition(
        u, k, slot(3), "no result for two intervals (120 s) after 2026-03-01T12:01:00+00:00", None
    )
    assert (gone.state, gone.since, gone.recent, gone.revision) == (k, slot(3), (), 2)
    assert stale(gone, later + timedelta(hours=1), INTERVAL) == (gone, None)
    # The next result decides again from unknown.
    back, change = step(gone, result(4, "U"), Thresholds())
    assert change == Transition(k, u, slot(4), None, "probe:1:4")
    assert back.state is u


def test_grace_leaves_time_for_the_second_slots_result() -> None:
    health, _, _ = run("DDD", Thresholds())  # down since slot 3, its last result
    early = slot(5) + timedelta(seconds=5)
    assert stale(health, early, INTERVAL, grace=10) == (health, None)
    _, change = stale(health, early + timedelta(seconds=6), INTERVAL, grace=10)
    assert change is not None
    assert (change.from_state, change.to_state, change.at) == (
        d,
        k,
        slot(5) + timedelta(seconds=10),
    )


def test_streaks_do_not_span_a_gap() -> None:
    health, _, _ = run("DD", Thresholds())
    assert health.state is k
    reset, change = stale(health, slot(10), INTERVAL)
    assert change is None and reset.consecutive_failures == 0 and reset.revision == 3
    health, change = step(reset, result(11, "D"), Thresholds())
    assert (health.state, health.consecutive_failures, change) == (k, 1, None)
    # Results from before the gap arriving now do not count.
    assert step(reset, result(1, "D"), Thresholds()) == (reset, None)


def test_a_new_device_with_no_result_is_not_stale_again() -> None:
    new = Health.new(T0)
    assert stale(new, slot(100), INTERVAL) == (new, None)


def _quiet_cases() -> list[tuple[str, Health, datetime | None]]:
    up, _, _ = run("U", Thresholds())
    down, _, _ = run("DDDD", Thresholds())  # down since slot 3, last heard at slot 4
    unknown_heard, _, _ = run("DD", Thresholds())  # unknown, two failures in the window
    gone, _ = stale(up, slot(10), INTERVAL)  # reset to unknown: nothing heard since
    paused, _ = pause(up, slot(2))
    resumed, _ = resume(paused, slot(5))
    return [
        ("new device", Health.new(T0), None),
        ("up, heard at slot 1", up, slot(1)),
        ("down, heard at slot 4", down, slot(4)),
        ("unknown but heard at slot 2", unknown_heard, slot(2)),
        ("unknown after the gap, nothing since", gone, None),
        ("paused", paused, None),
        ("resumed, nothing since", resumed, None),
        ("resumed, then heard at slot 6", step(resumed, result(6, "U"), Thresholds())[0], slot(6)),
    ]


@pytest.mark.parametrize(("name", "health", "expected"), _quiet_cases())
def test_quiet_since_is_where_the_stale_check_counts_from(
    name: str, health: Health, expected: datetime | None
) -> None:
    assert quiet_since(health) == expected, name
    # What the sweep's SQL filter relies on: stale() changes a health (a transition, or
    # an unknown's streaks reset) only after two intervals plus the grace from
    # quiet_since, and never one whose quiet_since is None.
    for seconds in (0, 60, 119, 120, 121, 125, 126, 3600, 86400):
        now = (expected or T0) + timedelta(seconds=seconds)
        changed = stale(health, now, INTERVAL, grace=5)[0] != health
        due = expected is not None and now > expected + timedelta(seconds=2 * INTERVAL + 5)
        assert changed == due, (name, seconds)


def test_pause_and_resume() -> None:
    health, _, _ = run("UU", Thresholds())
    paused, change = pause(health, slot(2) + timedelta(seconds=5))
    assert change == Transition(
        u, State.PAUSED, slot(2) + timedelta(seconds=5), "device deactivated", None
    )
    assert pause(paused, slot(3)) == (paused, None)
    assert stale(paused, slot(100), INTERVAL) == (paused, None)
    # A probe that was in flight when the device was paused does not count.
    assert step(paused, result(3, "D"), Thresholds(1, 1)) == (paused, None)
    assert next_interval(paused, 60, 10) == 60
    resumed, change = resume(paused, slot(10))
    assert change == Transition(State.PAUSED, k, slot(10), "device activated", None)
    assert (resumed.state, resumed.since, resumed.consecutive_successes) == (k, slot(10), 0)
    assert resume(resumed, slot(11)) == (resumed, None)
    # Results of slots from before the resume do not count; newer ones decide.
    assert step(resumed, result(9, "D"), Thresholds(1, 1)) == (resumed, None)
    health, change = step(resumed, result(11, "D"), Thresholds(1, 1))
    assert change == Transition(k, d, slot(11), "[STATUS] < 500 (503)", "probe:1:11")


@pytest.mark.parametrize(
    ("failure", "success", "codes", "retry", "expected"),
    [
        (3, 1, "", 10, 60),  # new: the interval
        (3, 1, "U", 10, 60),
        (3, 1, "UD", 10, 10),  # failing, not down yet: retry
        (3, 1, "UDD", 10, 10),
        (3, 1, "D", 10, 10),  # unknown and failing
        (3, 1, "UDDD", 10, 60),  # down: back to the interval
        (3, 2, "DDDU", 10, 10),  # down, passing, not up yet: retry
        (3, 2, "DDDUU", 10, 60),
        (3, 1, "UDU", 10, 60),
        (3, 1, "UD", None, 60),  # no retry interval: the interval
    ],
)
def test_next_interval(
    failure: int, success: int, codes: str, retry: int | None, expected: int
) -> None:
    health, _, _ = run(codes, Thresholds(failure, success))
    assert next_interval(health, 60, retry) == expected


@pytest.mark.parametrize(("failure", "success"), [(0, 1), (3, 0), (-1, -1)])
def test_thresholds_are_at_least_one(failure: int, success: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        Thresholds(failure, success)


def test_health_round_trips_through_json() -> None:
    health, _, _ = run("UDD" + "U" * WINDOW, Thresholds())
    adapter = TypeAdapter(Health)
    text = adapter.dump_json(health)
    assert adapter.validate_json(text) == health
    assert adapter.dump_python(health, mode="json")["state"] == "up"


def test_docstring_example_holds() -> None:
    import doctest

    failed, attempted = doctest.testmod(jobs.probe.state)
    assert attempted > 0
    assert failed == 0
