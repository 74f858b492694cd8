"""The dashboard's pure modules (``parse.js``, ``fieldErrors`` of ``api.js``), table-driven,
run in Chromium: the modules are imported from a plain static server (the page's own CSP
would refuse the test's evaluated code, which is the point of it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from core.natsserver import free_port
from tests.browser import chromium
from tests.targets import ThreadedServer
from web.dashboard import DASHBOARD_DIR

pytestmark = pytest.mark.slow  # a browser


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    app = Starlette(routes=[Mount("/", StaticFiles(directory=DASHBOARD_DIR, html=True))])
    server = ThreadedServer(app, free_port()).start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(server.url + "/index.html")
            yield page
    finally:
        server.stop()


def call(page: Page, module: str, function: str, *args: Any) -> Any:
    script = (
        f"async (args) => {{ const m = await import('/{module}'); "
        f"const out = m.{function}(...args); "
        "return out instanceof Map ? Object.fromEntries(out) : out; }"
    )
    return page.evaluate(script, list(args))


@pytest.mark.parametrize(
    ("check", "outcome"),
    [
        ({"status_up": True}, "up"),
        ({"status_up": False}, "down"),
        ({"status_up": True, "outcome": "degraded"}, "degraded"),
        ({"status_up": False, "outcome": None}, "down"),
        ({}, "unknown"),
        (None, "unknown"),
    ],
)
def test_a_checks_outcome(page: Page, check: Any, outcome: str) -> None:
    assert call(page, "parse.js", "checkOutcome", check) == outcome


@pytest.mark.parametrize(
    "body",
    [
        {"items": [{"device_id": 3, "name": "a", "state": "down", "since": "S",
                    "last_check": {"status_up": False}, "uptime_24h": 99.5, "uptime_30d": 98.0}]},
        [{"device_id": 3, "state": "down", "since": "S", "last_check": {"status_up": False},
          "uptime_24h": 99.5, "uptime_30d": 98.0}],
    ],
)  # fmt: skip
def test_status_answers_are_read_by_device(page: Page, body: Any) -> None:
    parsed = call(page, "parse.js", "parseStatus", body)
    assert parsed == {
        "3": {
            "state": "down",
            "since": "S",
            "lastCheck": {"status_up": False},
            "uptime24h": 99.5,
            "uptime30d": 98.0,
            "recent": [],
        }
    }


def test_status_answers_carry_the_recent_results_when_asked(page: Page) -> None:
    recent = [{"checked_at": "2026-12-01T00:00:00Z", "run_key": "k", "outcome": "up",
               "status_up": True, "latency_ms": 3.0}]  # fmt: skip
    parsed = call(page, "parse.js", "parseStatus", [{"device_id": 1, "recent": recent}])
    assert parsed["1"]["recent"] == recent


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([{"window": "24h", "uptime_percent": 99.0}, {"window": "30d", "uptime_percent": None}],
         {"24h": 99.0, "30d": None}),
        ({"windows": [{"window": "7d", "uptime_percent": 50}]}, {"7d": 50}),
        (None, {}),
    ],
)  # fmt: skip
def test_uptime_answers(page: Page, body: Any, expected: dict[str, Any]) -> None:
    assert call(page, "parse.js", "parseUptime", body) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "check.created", "payload": {"device_id": 4, "status_up": true}}',
         {"type": "check.created", "deviceId": 4, "payload": {"device_id": 4, "status_up": True}}),
        ('{"type": "device.updated", "payload": {"id": 5}}',
         {"type": "device.updated", "deviceId": 5, "payload": {"id": 5}}),
        ('{"type": "tick"}', {"type": "tick", "deviceId": None, "payload": {}}),
        ("not json", None),
        ('{"payload": {}}', None),
    ],
)  # fmt: skip
def test_events(page: Page, text: str, expected: Any) -> None:
    assert call(page, "parse.js", "parseEvent", text) == expected


@pytest.mark.parametrize(
    ("percent", "text"), [(None, None), (100, "100%"), (99.999, "100%"), (99.5, "99.50%")]
)
def test_uptime_text(page: Page, percent: float | None, text: str | None) -> None:
    assert call(page, "parse.js", "formatUptime", percent) == text


WINDOW = {"id": 1, "name": "patch", "mode": "suppress_alerts", "device_ids": [2, 3],
          "is_active": True, "open_until": "2030-01-01T00:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([WINDOW], [{"id": 1, "name": "patch", "mode": "suppress_alerts", "deviceIds": [2, 3],
                     "until": "2030-01-01T00:00:00Z"}]),
        ([{**WINDOW, "device_ids": None}], [{"id": 1, "name": "patch", "mode": "suppress_alerts",
                                              "deviceIds": None, "until": "2030-01-01T00:00:00Z"}]),
        ([{**WINDOW, "open_until": None}], []),  # not in force now
        ([{**WINDOW, "is_active": False}], []),
        (None, []),
    ],
)  # fmt: skip
def test_the_windows_in_force(page: Page, body: Any, expected: list[dict[str, Any]]) -> None:
    assert call(page, "parse.js", "parseWindows", body) == expected


NOW = 1_900_000_000_000  # ms, 2030-03-17
SOON = "2030-03-17T18:00:00Z"  # after NOW
PAST = "2020-01-01T00:00:00Z"
IN_FORCE = {"name": "patch", "deviceIds": None, "until": SOON}


@pytest.mark.parametrize(
    ("device", "windows", "words"),
    [
        ({"id": 2}, [], []),
        ({"id": 2, "snoozed_until": SOON}, [], ["snoozed"]),
        ({"id": 2, "snoozed_until": PAST}, [], []),  # the snooze ran out
        ({"id": 2}, [IN_FORCE], ["maintenance"]),
        ({"id": 2}, [{**IN_FORCE, "deviceIds": [2]}], ["maintenance"]),
        ({"id": 2}, [{**IN_FORCE, "deviceIds": [3]}], []),  # another device's window
        ({"id": 2}, [{**IN_FORCE, "until": PAST}], []),  # ended since it was read
        ({"id": 2, "snoozed_until": SOON}, [IN_FORCE, IN_FORCE], ["maintenance", "snoozed"]),
    ],
)
def test_a_devices_alert_marks_are_words(
    page: Page, device: dict[str, Any], windows: list[dict[str, Any]], words: list[str]
) -> None:
    flags = call(page, "parse.js", "deviceFlags", device, windows, NOW)
    assert [f["word"] for f in flags] == words
    assert all(f["title"] for f in flags)


FIELDS = ["name", "address", "conditions", "interval_seconds"]


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ([{"loc": ["body", "address"], "msg": "bad URL", "type": "x"}], {"address": "bad URL"}),
        (
            [{"loc": ["body", "conditions", 1], "msg": "unknown placeholder", "type": "x"}],
            {"conditions": "unknown placeholder (at 1)"},
        ),
        (
            [
                {"loc": ["body", "name"], "msg": "too long", "type": "x"},
                {"loc": ["body", "name"], "msg": "blank", "type": "x"},
            ],
            {"name": "too long; blank"},
        ),
        (
            [{"loc": ["body", "colour"], "msg": "extra", "type": "x"}],
            {"_general": "colour: extra"},
        ),
        ("device 3 not found", {"_general": "device 3 not found"}),
    ],
)
def test_422_details_land_beside_their_field(
    page: Page, detail: Any, expected: dict[str, str]
) -> None:
    assert call(page, "api.js", "fieldErrors", detail, FIELDS) == json.loads(json.dumps(expected))


DAY = 86_400_000
NOW = 1_800_000_000_000
MIN = 60_000


@pytest.mark.parametrize(
    ("times", "start"),
    [
        ([], NOW - DAY),  # nothing to draw: the whole window
        ([NOW - 23 * 3_600_000], NOW - DAY),  # a day's checks: the whole window
        ([NOW - 6 * 3_600_000, NOW], NOW - DAY),  # a quarter of it: still the window
        # Minutes of checks: from a minute before the oldest (at least a minute, else 5 %).
        ([NOW - 2 * MIN, NOW - MIN, NOW], NOW - 3 * MIN),
        ([NOW - 60 * MIN, NOW], NOW - 63 * MIN),
    ],
)
def test_the_chart_starts_near_the_oldest_check_when_they_are_recent(
    page: Page, times: list[int], start: int
) -> None:
    assert call(page, "device.js", "chartSpan", times, NOW - DAY, NOW) == start


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (30 * MIN, "08:00:00"),
        (59 * MIN, "08:00:00"),
        (60 * MIN, "01-15 08:00"),
        (DAY, "01-15 08:00"),
    ],
)
def test_axis_times_show_seconds_on_short_spans(page: Page, span: int, text: str) -> None:
    at = 1_768_464_000_000  # 2026-01-15T08:00:00Z
    assert call(page, "charts.js", "axisTime", at, span) == text


def test_a_lone_latency_is_drawn_as_a_dash(page: Page) -> None:
    script = """async () => {
        const m = await import('/charts.js');
        const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
        m.sparkline(svg, [12], ['up']);
        return svg.querySelector('polyline')?.getAttribute('points') ?? null;
    }"""
    assert page.evaluate(script) == "47.0,2 53.0,2"


@pytest.mark.parametrize(
    ("notification", "label"),
    [
        ({"status": "sent", "reminder": 0, "reason": None}, "sent"),
        ({"status": "failed", "reminder": 2, "reason": None}, "failed (reminder 2)"),
        (
            {"status": "sent", "reminder": 3, "reason": "after maintenance window 7"},
            "sent (after maintenance)",
        ),
        (
            {"status": "suppressed", "reminder": 0, "reason": "maintenance window 7"},
            "suppressed",
        ),
        ({}, "—"),
    ],
)
def test_a_notifications_label(page: Page, notification: dict[str, Any], label: str) -> None:
    assert call(page, "parse.js", "notificationLabel", notification) == label
