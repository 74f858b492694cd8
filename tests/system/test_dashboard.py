"""The dashboard in Chromium against ``python scheduler.py`` (its own NATS, SQLite, ports):
no console error or CSP violation at load; a device added through the form appears;
"probe now" shows its result without a reload; a stopped target turns the row down
through the live feed; a restarted server is reconnected to by itself; with API_TOKEN the
page asks for the token once.  Every wait is bounded (``expect`` timeouts)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.natsserver import free_port
from tests.browser import Console, chromium, chromium_path
from tests.processes import Fleetprobe
from tests.targets import ThreadedServer
from tests.targets import app as target_app

pytestmark = pytest.mark.slow

TOKEN = "dashboard-token-1"


@pytest.fixture
def fleetprobe(tmp_path: Path) -> Iterator[Fleetprobe]:
    chromium_path()  # skip before starting anything
    fp = Fleetprobe(tmp_path)
    fp.start()
    try:
        yield fp
    finally:
        fp.stop()


def test_the_dashboard_follows_a_device_up_down_and_through_a_restart(
    fleetprobe: Fleetprobe,
) -> None:
    target_port = free_port()
    target = ThreadedServer(target_app, target_port).start()
    try:
        with chromium() as browser:
            console = Console()
            page = console.watch(browser.new_page(viewport={"width": 1280, "height": 800}))
            page.goto(fleetprobe.url + "/")
            expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
            expect(page.locator("#empty")).to_be_visible()
            expect(page.locator("#offline-banner")).to_be_hidden()
            assert console.errors == [], console.errors  # no error, no CSP violation
            loads = console.navigations

            # Added through the form: it appears without a reload.
            page.locator("#add-device").click()
            form = page.locator("#device-form")
            form.locator("input[name=name]").fill("web-target")
            form.locator("input[name=address]").fill(f"{target.url}/ok")
            form.locator("input[name=interval_seconds]").fill("1")
            form.locator("#save-device").click()
            expect(page.locator("#device-dialog")).to_be_hidden()
            row = page.locator("#devices tbody tr", has_text="web-target")
            expect(row).to_have_count(1)
            expect(row.locator(".state")).to_have_text("up", timeout=30_000)
            # Its state changed: the uptime is read again (/status), no reload.
            expect(row.locator('[data-cell="up24"]')).to_have_text("100%", timeout=30_000)

            # "Probe now": its result in the row, no reload.
            row.locator("button[data-action=probe]").click()
            expect(row.locator(".probe-result")).to_contain_text("up", timeout=30_000)
            expect(row.locator(".probe-result")).to_contain_text("HTTP 200")

            # The target goes away: the live feed turns the row down.
            target.stop()
            expect(row.locator(".state")).to_have_text("down", timeout=45_000)
            # Up, then down for a while: its 24 h uptime drops below 100 % on the page.
            below_100 = re.compile(r"^\d{1,2}\.\d\d%$")
            expect(row.locator('[data-cell="up24"]')).to_have_text(below_100, timeout=30_000)
            assert console.navigations == loads

            # The server restarts: the page shows it is offline, then reconnects by itself
            # and follows the feed again (the target back: up).
            fleetprobe.stop()
            expect(page.locator("#conn")).to_have_text("offline", timeout=20_000)
            expect(page.locator("#offline-banner")).to_be_visible()
            fleetprobe.start()
            target = ThreadedServer(target_app, target_port).start()
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            expect(page.locator("#offline-banner")).to_be_hidden()
            expect(row.locator(".state")).to_have_text("up", timeout=45_000)
            assert console.navigations == loads
    finally:
        target.stop()


def test_a_device_added_with_the_forms_defaults_is_probed_at_once(
    fleetprobe: Fleetprobe,
) -> None:
    """Out of the box a device without an interval is probed hourly: the form proposes a
    minute (the server's default shown beside it) and the page probes a new device at
    once, so that its first result is there now.  The state is the server's: one failed
    result is not yet "down" (failure_threshold 3), before and after a reload."""
    target = ThreadedServer(target_app, free_port()).start()
    try:
        with chromium() as browser:
            console = Console()
            page = console.watch(browser.new_page(viewport={"width": 1280, "height": 800}))
            page.goto(fleetprobe.url + "/")
            expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
            form = page.locator("#device-form")
            interval = form.locator("input[name=interval_seconds]")
            ids = {}
            for name, path in (("fresh-up", "/ok"), ("fresh-failing", "/status/503")):
                page.locator("#add-device").click()
                expect(interval).to_have_value("60")
                expect(interval).to_have_attribute("placeholder", "server default: 3600 s")
                form.locator("input[name=name]").fill(name)
                form.locator("input[name=address]").fill(f"{target.url}{path}")
                form.locator("#save-device").click()
                expect(page.locator("#device-dialog")).to_be_hidden()
                row = page.locator("#devices tbody tr", has_text=name)
                expect(row).to_have_count(1)
                ids[name] = int(row.get_attribute("data-id") or 0)

            up = page.locator(f'#devices tr[data-id="{ids["fresh-up"]}"]')
            expect(up.locator(".probe-result")).to_contain_text("up · ", timeout=30_000)
            expect(up.locator(".state")).to_have_text("up", timeout=30_000)
            expect(up.locator('[data-cell="up24"]')).not_to_have_attribute(
                "title", "not available on this server"
            )
            failing = page.locator(f'#devices tr[data-id="{ids["fresh-failing"]}"]')
            expect(failing.locator(".probe-result")).to_contain_text("HTTP 503", timeout=30_000)
            expect(failing.locator(".state")).to_have_text("unknown")
            for device_id in ids.values():
                stored = fleetprobe.call("GET", f"/devices/{device_id}")
                assert stored["interval_seconds"] == 60
                assert fleetprobe.call("GET", f"/devices/{device_id}/checks")  # probed
            page.reload()
            expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
            expect(failing.locator(".state")).to_have_text("unknown")
            expect(up.locator(".state")).to_have_text("up")
            assert console.errors == [], console.errors
    finally:
        target.stop()


def test_a_bad_field_is_shown_beside_it(fleetprobe: Fleetprobe) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(fleetprobe.url + "/")
        expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
        page.locator("#add-device").click()
        form = page.locator("#device-form")
        form.locator("input[name=name]").fill("bad")
        form.locator("input[name=address]").fill("ftp://nowhere")
        form.locator("input[name=interval_seconds]").fill("0")
        form.locator("#save-device").click()
        expect(form.locator("[data-error-for=address]")).not_to_be_empty()
        expect(form.locator("[data-error-for=interval_seconds]")).to_contain_text("greater")
        expect(form.locator("[data-error-for=name]")).to_be_empty()
        expect(page.locator("#device-dialog")).to_be_visible()
        expect(page.locator("#devices tbody tr")).to_have_count(0)


def test_with_api_token_the_page_asks_for_it_once(tmp_path: Path) -> None:
    chromium_path()
    fp = Fleetprobe(tmp_path, API_TOKEN=TOKEN)
    fp.start()
    try:
        fp.post("/devices", {"name": "guarded", "address": "http://127.0.0.1:9/"})
        with chromium() as browser:
            page = browser.new_page()
            page.goto(fp.url + "/")
            dialog = page.locator("#token-dialog")
            expect(dialog).to_be_visible(timeout=20_000)
            # The feed is refused until the token is given: not a lost server.
            expect(page.locator("#offline-banner")).to_be_hidden()
            dialog.locator("input[name=token]").fill("wrong")
            dialog.locator("button[type=submit]").click()
            expect(page.locator("#token-error")).to_be_visible(timeout=10_000)
            dialog.locator("input[name=token]").fill(TOKEN)
            dialog.locator("button[type=submit]").click()
            expect(dialog).to_be_hidden()
            expect(page.locator("#devices tbody tr", has_text="guarded")).to_have_count(1)
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            # Kept for the session: a reload does not ask again.
            page.reload()
            expect(page.locator("#devices tbody tr", has_text="guarded")).to_have_count(1)
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            expect(dialog).to_be_hidden()
            # in sessionStorage, never a cookie
            assert page.context.cookies() == []
    finally:
        fp.stop()
