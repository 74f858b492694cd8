"""The dashboard in Chromium against ``python scheduler.py`` (its own NATS, SQLite, ports):
no console error or CSP violation at load; a device added through the form appears;
"probe now" shows its result without a reload; a stopped target turns the row down
through the live feed; a restarted server is reconnected to by itself; with API_TOKEN the
page asks for the token once.  Every wait is bounded (``expect`` timeouts)."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core.natsserver import free_port
from tests.browser import Console, chromium, chromium_path
from tests.processes import Proc, scheduler_cmd, wait_until
from tests.targets import ThreadedServer
from tests.targets import app as target_app

pytestmark = pytest.mark.slow

TOKEN = "dashboard-token-1"


class Fleetprobe:
    """``python scheduler.py`` that can be stopped and started again on the same ports,
    data dir and database."""

    def __init__(self, tmp_path: Path, **extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp_path
        self.env = {
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}",
            "NATS_DATA_DIR": str(tmp_path / "data"),
            "WEB_PORT": str(self.port),
            "EMBEDDED_NATS": "true",
            "RESULT_FLUSH_MS": "2",
            "SCHEDULER_RESYNC_SECONDS": "1",
            **extra,
        }
        self.runs = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.runs += 1
        self.proc = scheduler_cmd(self.env, self.tmp / f"scheduler-{self.runs}.log")
        proc = self.proc
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)

    def stop(self) -> None:
        if self.proc is not None:
            assert self.proc.stop(signal.SIGTERM, timeout=20) == 0, self.proc.output()[-3000:]
            self.proc = None

    def post(self, path: str, body: object) -> dict[str, object]:
        headers = {"Content-Type": "application/json"}
        if "API_TOKEN" in self.env:
            headers["Authorization"] = f"Bearer {self.env['API_TOKEN']}"
        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer: dict[str, object] = json.load(resp)
            return answer


@pytest.fixture
def fleetprobe(tmp_path: Path) -> Iterator[Fleetprobe]:
    chromium_path()  # skip before starting anything
    fp = Fleetprobe(tmp_path)
    fp.start()
    try:
        yield fp
    finally:
        fp.stop()


def row_of(page: Page, name: str) -> object:
    return page.locator("#devices tbody tr", has=page.locator("a.name", has_text=name))


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

            # "Probe now": its result in the row, no reload.
            row.locator("button[data-action=probe]").click()
            expect(row.locator(".probe-result")).to_contain_text("up", timeout=30_000)
            expect(row.locator(".probe-result")).to_contain_text("HTTP 200")

            # The target goes away: the live feed turns the row down.
            target.stop()
            expect(row.locator(".state")).to_have_text("down", timeout=45_000)
            assert console.navigations == loads

            # The server restarts: the page shows it is offline, then reconnects by itself
            # and follows the feed again (the target back: up).
            fleetprobe.stop()
            expect(page.locator("#conn")).to_have_text("offline", timeout=20_000)
            fleetprobe.start()
            target = ThreadedServer(target_app, target_port).start()
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            expect(row.locator(".state")).to_have_text("up", timeout=45_000)
            assert console.navigations == loads
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
