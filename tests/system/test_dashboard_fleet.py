"""1,000 devices on the dashboard (Chromium against ``python scheduler.py --no-scheduler``):
the page asks /status for every device's state and uptimes (no request per device for
them), and a burst of 1,000 live events writes only to the rows of the devices it names:
the same ``<tr>`` nodes stay, no row is added or removed, every other row is untouched
(a MutationObserver says so; nothing here is timed: ``python -m tests.dashboard_fleet``
measures)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import chromium, chromium_path
from tests.dashboard_fleet import (
    FINAL_MS,
    FLEET,
    OBSERVE,
    REPORT,
    burst,
    db_installation,
    insert_checks,
    insert_devices,
    insert_history,
    open_fleet,
    publish,
    wait_applied,
)
from tests.processes import Fleetprobe

pytestmark = pytest.mark.slow


@pytest.fixture
def fleetprobe(tmp_path: Path) -> Iterator[Fleetprobe]:
    chromium_path()  # skip before starting anything
    fp = Fleetprobe(tmp_path, "--no-scheduler")  # nothing probes: the events are the test's
    fp.start()
    try:
        yield fp
    finally:
        fp.stop()


def test_a_burst_of_events_writes_only_the_rows_it_names_among_1000(
    fleetprobe: Fleetprobe,
) -> None:
    db = fleetprobe.tmp / "monitoring.db"
    ids = insert_devices(db, FLEET)
    insert_history(db, ids[0])
    insert_checks(db, ids[0], [10.0, 20.0, 30.0, 40.0])
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        paths = open_fleet(page, fleetprobe, FLEET)

        # State, uptimes and sparklines came from /status, 1,000 devices a request, and
        # nothing was asked device by device.
        status = [p for p in paths if p.startswith("/status")]
        assert status == [
            "/status?recent=30&limit=1000&offset=0",
            "/status?recent=30&limit=1000&offset=1000",
        ]
        assert not [p for p in paths if re.search(r"/devices/\d+", p)]
        first = page.locator(f'#devices tr[data-id="{ids[0]}"]')
        expect(first.locator('[data-cell="up24"]')).to_have_text("75.00%")
        expect(first.locator('[data-cell="up30"]')).to_have_text("97.50%")
        expect(first.locator(".state")).to_have_text("up")
        expect(first.locator('[data-cell="latency"]')).to_have_text("40 ms")  # the newest
        points = first.locator("svg.spark polyline").get_attribute("points") or ""
        assert len(points.split()) == 4  # one point per seeded result

        # 100 devices get 10 results each, 20 of them go down: 1,020 events at once.
        touched = ids[100:300:2]
        down = touched[:20]
        page.evaluate(OBSERVE)
        publish(fleetprobe.env["NATS_URL"], burst(touched, 10, down), db_installation(db))
        wait_applied(page, touched, f"{FINAL_MS:.0f} ms")
        for device_id in down:
            expect(page.locator(f'#devices tr[data-id="{device_id}"] .state')).to_have_text("down")
        report = page.evaluate(REPORT)

        assert report["rows"] == FLEET
        assert report["sameRows"] is True  # not one <tr> replaced
        assert report["bodyChanges"] == 0  # no row added, removed or moved
        assert report["touched"] == sorted(touched)  # and no other row written to
        assert report["mutations"] > 0
        # the counts summed again once the burst was drawn
        unknown = FLEET - 1 - len(down)
        expect(page.locator("#counts")).to_have_text(f"1 up · {unknown} unknown · {len(down)} down")

        # The 20 state changes moved uptimes: they are read again from /status (its pages,
        # uptimes only, no request per device), and the states the feed gave stay.
        pages = ["/status?limit=1000&offset=0", "/status?limit=1000&offset=1000"]
        deadline = time.monotonic() + 30
        while len([p for p in paths if p.startswith("/status?limit=")]) < len(pages):
            assert time.monotonic() < deadline, "the uptimes were not read again"
            page.wait_for_timeout(50)
        refreshed = [p for p in paths if p.startswith("/status?limit=")]
        assert refreshed[:2] == pages and set(refreshed) == set(pages), refreshed
        assert not [p for p in paths if re.search(r"/devices/\d+", p)]
        expect(page.locator("#counts")).to_have_text(f"1 up · {unknown} unknown · {len(down)} down")
