"""The alerts on the dashboard (Chromium against ``python scheduler.py``, a local target and
a local webhook receiver): a device's page lists its notifications (status, channel, when)
and follows new ones live; it snoozes and wakes the device; the device list marks a device
in maintenance or snoozed with a word; the list asks no device's uptime, its page once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from core.natsserver import free_port
from tests.browser import Console, chromium, chromium_path
from tests.jobs.alerts.receiver import Receiver, receiver
from tests.processes import Fleetprobe
from tests.targets import ThreadedServer
from tests.targets import app as target_app

pytestmark = pytest.mark.slow

UPTIME = re.compile(r"/devices/\d+/uptime")


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def fleetprobe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleetprobe]:
    chromium_path()  # skip before starting anything
    # The leader's sweep announces maintenance windows every second; a failed delivery is
    # tried once more at once, then recorded as failed.
    fp = Fleetprobe(
        tmp_path_factory.mktemp("alerts"), ALERT_SWEEP_SECONDS="1", ALERT_RETRY_DELAYS_SECONDS="0"
    )
    fp.start()
    try:
        yield fp
    finally:
        fp.stop()


@pytest.fixture
def target() -> Iterator[ThreadedServer]:
    server = ThreadedServer(target_app, free_port()).start()
    try:
        yield server
    finally:
        server.stop()


def new_device(fp: Fleetprobe, name: str, address: str, **fields: Any) -> int:
    body = {"name": name, "address": address, "interval_seconds": 1, **fields}
    device_id: int = fp.post("/devices", body)["id"]  # type: ignore[assignment]
    return device_id


def row_of(page: Page, device_id: int) -> Any:
    return page.locator(f'#devices tr[data-id="{device_id}"]')


def test_the_device_page_follows_its_notifications_live(
    fleetprobe: Fleetprobe, hook: Receiver, target: ThreadedServer
) -> None:
    good = fleetprobe.post("/channels", {"name": "ops-hook", "kind": "webhook", "url": hook.url})
    broken = fleetprobe.post(
        "/channels",
        {"name": "dead-hook", "kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"},
    )
    device = new_device(
        fleetprobe, "alerting", f"{target.url}/ok",
        failure_threshold=1, channel_ids=[good["id"], broken["id"]],
    )  # fmt: skip
    with chromium() as browser:
        console = Console()
        page = console.watch(browser.new_page(viewport={"width": 1280, "height": 900}))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(fleetprobe.url + "/")
        expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
        expect(row_of(page, device).locator(".state")).to_have_text("up", timeout=30_000)
        assert not [u for u in requests if UPTIME.search(u)]  # the list reads /status

        row_of(page, device).locator("a.name").click()
        alerts = page.locator("#device-alerts")
        expect(alerts).to_contain_text("No notifications yet.", timeout=20_000)
        expect(page.locator("#device-view .uptime")).to_contain_text("24h")
        assert len([u for u in requests if UPTIME.search(u)]) == 1  # its page: once
        page.evaluate("() => { window.kept = true; }")  # gone if the page reloads

        # The target goes away: down, one notification per channel, shown as they land.
        target.stop()
        table = alerts.locator("table")
        sent = table.locator("tr", has_text="ops-hook")
        failed = table.locator("tr", has_text="dead-hook")
        expect(sent.locator(".notif")).to_have_text("sent", timeout=45_000)
        expect(failed.locator(".notif")).to_have_text("failed", timeout=45_000)
        expect(sent).to_contain_text("HTTP 200")
        expect(sent.locator("td").first).to_contain_text(str(datetime.now(UTC).year))
        expect(failed.locator("td").nth(3)).to_have_text("2")  # tried twice
        assert hook.count() == 1
        assert page.evaluate("() => window.kept") is True  # no reload
        assert console.errors == [], console.errors


def test_a_device_is_snoozed_and_woken_from_its_page(fleetprobe: Fleetprobe) -> None:
    device = new_device(fleetprobe, "snoozy", "http://127.0.0.1:9/", is_active=False)
    with chromium() as browser:
        console = Console()
        page = console.watch(browser.new_page(viewport={"width": 1280, "height": 900}))
        page.goto(f"{fleetprobe.url}/#/devices/{device}")
        expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
        alerts = page.locator("#device-alerts")
        expect(alerts.locator(".alert-state")).to_have_text(re.compile("^Alerts on"))
        expect(alerts.locator("[data-action=unsnooze]")).to_be_disabled()

        alerts.locator("select[name=snooze-for]").select_option(label="4 h")
        alerts.locator("[data-action=snooze]").click()
        expect(alerts.locator(".alert-state")).to_contain_text("alerts snoozed until")
        until = datetime.fromisoformat(
            fleetprobe.call("GET", f"/devices/{device}")["snoozed_until"]
        )
        assert timedelta(hours=3, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=4)

        page.locator("a", has_text="all devices").click()
        expect(row_of(page, device).locator(".flags")).to_have_text("snoozed")
        expect(row_of(page, device)).to_have_attribute("data-flags", "snoozed")

        page.go_back()
        alerts.locator("[data-action=unsnooze]").click()
        expect(alerts.locator(".alert-state")).to_have_text(re.compile("^Alerts on"))
        assert fleetprobe.call("GET", f"/devices/{device}")["snoozed_until"] is None
        page.go_forward()
        expect(row_of(page, device).locator(".flags")).to_have_text("")

        # Snoozed elsewhere (the API): the device.updated event marks the row.
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        fleetprobe.post(f"/devices/{device}/snooze", {"until": soon})
        expect(row_of(page, device).locator(".flags")).to_have_text("snoozed")
        assert console.errors == [], console.errors


def test_a_device_in_maintenance_is_marked_live(fleetprobe: Fleetprobe) -> None:
    covered = new_device(fleetprobe, "patched", "http://127.0.0.1:9/", is_active=False)
    other = new_device(fleetprobe, "unpatched", "http://127.0.0.1:9/", is_active=False)
    with chromium() as browser:
        console = Console()
        page = console.watch(browser.new_page(viewport={"width": 1280, "height": 900}))
        page.goto(fleetprobe.url + "/")
        expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
        expect(row_of(page, covered)).to_have_count(1)
        page.evaluate("() => { window.kept = true; }")  # gone if the page reloads
        start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        window = fleetprobe.post(
            "/maintenance",
            {"name": "patch night", "device_ids": [covered], "start": start, "duration": 3600},
        )
        # maintenance.started, from the leader's sweep: the row says so, no reload
        expect(row_of(page, covered).locator(".flags")).to_have_text("maintenance", timeout=20_000)
        expect(row_of(page, covered).locator(".flags")).to_have_attribute(
            "title", re.compile('maintenance "patch night" until')
        )
        expect(row_of(page, other).locator(".flags")).to_have_text("")

        row_of(page, covered).locator("a.name").click()
        expect(page.locator("#device-alerts .alert-state")).to_contain_text("patch night")
        page.go_back()

        fleetprobe.call("DELETE", f"/maintenance/{window['id']}")  # maintenance.ended
        expect(row_of(page, covered).locator(".flags")).to_have_text("", timeout=20_000)
        assert page.evaluate("() => window.kept") is True
        assert console.errors == [], console.errors
