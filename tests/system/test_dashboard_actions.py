"""What a user does on the dashboard (Chromium against ``python scheduler.py`` and a local
target): edit a device with the API's errors shown beside their fields, "Test this check",
pause, resume and delete; a device's page (latency chart over 24h/7d/30d, incidents,
state changes, recent results with each condition's verdict); the recorder page
(schedules, start / stop against the reference recorder)."""

from __future__ import annotations

import re
import sys
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from core.natsserver import free_port
from tests.browser import Console, chromium, chromium_path
from tests.processes import Fleetprobe, Proc, wait_until
from tests.targets import ThreadedServer
from tests.targets import app as target_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleetprobe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleetprobe]:
    chromium_path()  # skip before starting anything
    fp = Fleetprobe(tmp_path_factory.mktemp("actions"))
    fp.start()
    try:
        yield fp
    finally:
        fp.stop()


@pytest.fixture(scope="module")
def target() -> Iterator[ThreadedServer]:
    server = ThreadedServer(target_app, free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser, fleetprobe: Fleetprobe) -> Iterator[Page]:
    console = Console()
    page = console.watch(browser.new_page(viewport={"width": 1280, "height": 900}))
    page.goto(fleetprobe.url + "/")
    expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
    yield page
    # Chromium logs each 4xx answer it fetched; the 422s asked for are not errors.
    errors = [e for e in console.errors if "status of 422" not in e]
    assert errors == [], errors
    page.close()


def new_device(fp: Fleetprobe, name: str, address: str, **fields: Any) -> int:
    device_id: int = fp.post("/devices", {"name": name, "address": address, **fields})["id"]  # type: ignore[assignment]
    return device_id


def row_of(page: Page, device_id: int) -> Any:
    return page.locator(f'#devices tr[data-id="{device_id}"]')


def test_an_edit_shows_the_apis_errors_beside_their_fields_then_saves(
    page: Page, fleetprobe: Fleetprobe, target: ThreadedServer
) -> None:
    device = new_device(fleetprobe, "editable", f"{target.url}/ok", is_active=False)
    row_of(page, device).locator("button[data-action=edit]").click()
    dialog = page.locator("#device-dialog")
    expect(dialog.locator("#device-dialog-title")).to_have_text("Edit editable")
    form = page.locator("#device-form")
    form.locator("textarea[name=conditions]").fill("[STATUS] == 200\n[NOPE] == 1")
    form.locator("input[name=failure_threshold]").fill("0")
    form.locator("#save-device").click()
    expect(form.locator("[data-error-for=conditions]")).to_contain_text("(at 1)")
    expect(form.locator("[data-error-for=failure_threshold]")).to_contain_text("greater")
    expect(form.locator("[data-error-for=name]")).to_be_empty()
    expect(form.locator("textarea[name=conditions]")).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_be_visible()
    assert fleetprobe.call("GET", f"/devices/{device}")["conditions"] is None  # nothing saved

    # "Test this check" runs the form as it stands against the target, saving nothing.
    form.locator("textarea[name=conditions]").fill("[STATUS] == 200\n[BODY].status == up")
    form.locator("input[name=failure_threshold]").fill("2")
    form.locator("#validate-device").click()
    result = form.locator("#validate-result")
    expect(result).to_contain_text("✓ [STATUS] == 200", timeout=20_000)
    expect(result).to_contain_text("[BODY].status == up")
    assert fleetprobe.call("GET", f"/devices/{device}")["conditions"] is None

    form.locator("#save-device").click()
    expect(dialog).to_be_hidden()
    saved = fleetprobe.call("GET", f"/devices/{device}")
    assert saved["conditions"] == ["[STATUS] == 200", "[BODY].status == up"]
    assert saved["failure_threshold"] == 2


def test_the_form_opts_a_device_into_the_status_pages_details_and_back_out(
    page: Page, browser: Browser, fleetprobe: Fleetprobe, target: ThreadedServer
) -> None:
    address = f"{target.url}/ok"
    device = new_device(fleetprobe, "shown-with-details", address, is_active=False)
    row_of(page, device).locator("button[data-action=edit]").click()
    form = page.locator("#device-form")
    details = form.locator("input[name=public_details]")
    expect(details).not_to_be_checked()
    form.locator("input[name=public]").check()
    details.check()
    form.locator("#save-device").click()
    expect(page.locator("#device-dialog")).to_be_hidden()
    saved = fleetprobe.call("GET", f"/devices/{device}")
    assert (saved["public"], saved["public_details"]) == (True, True)
    status = browser.new_page()
    status.goto(fleetprobe.url + "/status-page")
    expect(status.locator("tr.details code.address")).to_have_text(address)
    status.close()

    # the form opened again shows the stored flags; unticking one sends it
    row_of(page, device).locator("button[data-action=edit]").click()
    expect(details).to_be_checked()
    details.uncheck()
    form.locator("#save-device").click()
    expect(page.locator("#device-dialog")).to_be_hidden()
    saved = fleetprobe.call("GET", f"/devices/{device}")
    assert (saved["public"], saved["public_details"]) == (True, False)


def test_a_device_is_paused_resumed_and_deleted(
    page: Page, fleetprobe: Fleetprobe, target: ThreadedServer
) -> None:
    device = new_device(fleetprobe, "pausable", f"{target.url}/ok", interval_seconds=1)
    row = row_of(page, device)
    expect(row.locator(".state")).to_have_text("up", timeout=30_000)
    row.locator("button[data-action=pause]").click()
    expect(row.locator(".state")).to_have_text("paused")
    expect(row.locator("button[data-action=pause]")).to_have_text("Resume")
    assert fleetprobe.call("GET", f"/devices/{device}")["is_active"] is False
    row.locator("button[data-action=pause]").click()
    expect(row.locator("button[data-action=pause]")).to_have_text("Pause")
    expect(row.locator(".state")).to_have_text("up", timeout=30_000)

    page.once("dialog", lambda d: d.accept())  # "Delete pausable? Its history goes with it."
    row.locator("button[data-action=delete]").click()
    expect(row).to_have_count(0)
    with pytest.raises(urllib.error.HTTPError) as gone:
        fleetprobe.call("GET", f"/devices/{device}")
    assert gone.value.code == 404


def test_a_device_page_shows_its_chart_incidents_state_changes_and_verdicts(
    page: Page, fleetprobe: Fleetprobe, target: ThreadedServer
) -> None:
    device = new_device(
        fleetprobe, "charted", f"{target.url}/ok", interval_seconds=1, failure_threshold=1,
        conditions=["[STATUS] == 200"],
    )  # fmt: skip
    expect(row_of(page, device).locator(".state")).to_have_text("up", timeout=30_000)
    fleetprobe.call("PATCH", f"/devices/{device}", {"address": f"{target.url}/status/503"})
    expect(row_of(page, device).locator(".state")).to_have_text("down", timeout=30_000)

    row_of(page, device).locator("a.name").click()
    view = page.locator("#device-view")
    expect(view.locator("h2")).to_contain_text("charted")
    expect(view.locator("svg.chart polyline")).to_have_count(1)
    # Seconds of checks in a 24 h window: the axis starts just before the oldest, not a day
    # ago (the note says since when; the first tick is that time, to the second).
    note = view.locator("small.muted", has_text="checks")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    expect(note).to_have_text(re.compile(rf"^\d+ checks, all since {stamp}$"))
    since = (note.text_content() or "").split("since ")[1]
    expect(view.locator("svg.chart text.tick[text-anchor=start]")).to_have_text(since[11:19])
    view.locator('button[data-window="7d"]').click()
    expect(view.locator('button[data-window="7d"]')).to_have_attribute("aria-pressed", "true")
    expect(view.locator('button[data-window="24h"]')).to_have_attribute("aria-pressed", "false")
    expect(view.locator("svg.chart polyline")).to_have_count(1)

    panel = view.locator("section.panel")
    incidents = panel.filter(has_text="Incidents")
    expect(incidents.locator("tbody tr").first).to_contain_text("open")
    changes = panel.filter(has_text="State changes")
    expect(changes.locator("tbody tr", has_text="down").first).to_be_visible()
    results = panel.filter(has_text="Recent results")
    expect(results.locator(".verdicts .ok", has_text="[STATUS] == 200").first).to_be_visible()
    failed = results.locator(".verdicts .failed", has_text="[STATUS] == 200").first
    expect(failed).to_contain_text("✗")
    expect(failed).to_contain_text("actual: 503")

    # Followed live, no reload: the device recovers; its newest result (on top), the state
    # change from down to up and the end of its incident appear as they happen.
    uptime = view.locator(".uptime")
    down_uptime = uptime.text_content() or ""
    assert down_uptime.startswith("Uptime: 24h ")
    fleetprobe.call("PATCH", f"/devices/{device}", {"address": f"{target.url}/ok"})
    newest = results.locator("tbody tr").first
    expect(newest.locator(".state")).to_have_text("up", timeout=30_000)
    expect(newest.locator(".verdicts .ok")).to_contain_text("[STATUS] == 200")
    recovered = changes.locator("tbody tr", has=page.locator("td:nth-child(2) .state-down"))
    expect(recovered.filter(has=page.locator("td:nth-child(3) .state-up"))).to_have_count(1)
    ended = incidents.locator("tbody tr").first.locator("td").nth(1)
    expect(ended).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    expect(uptime).not_to_have_text(down_uptime)  # read again after the state change


def test_the_recorder_page_lists_schedules_and_starts_and_stops_a_task(
    page: Page, fleetprobe: Fleetprobe
) -> None:
    fleetprobe.post(
        "/recorder/schedules", {"task_id": "cam7", "cmd": "status", "interval_seconds": 3600}
    )
    simulator = Proc(
        [sys.executable, "-m", "jobs.recorder.simulator", "--nats-url", fleetprobe.env["NATS_URL"]],
        {}, fleetprobe.tmp / "simulator.log",
    )  # fmt: skip
    try:
        wait_until(lambda: "listening" in simulator.output(), 30, "the simulator", simulator)
        page.locator("nav a", has_text="Recorders").click()
        schedules = page.locator("#recorder-schedules tbody")
        expect(schedules.locator("tr", has_text="cam7")).to_contain_text("every 3600 s")
        card = page.locator('#recorder-tasks [data-task="cam7"]')
        card.locator("button[data-cmd=start]").click()
        expect(card.locator(".recorder-status")).to_contain_text("start · success · started")
        expect(card.locator(".recorder-status")).to_contain_text(".wav")
        card.locator("button[data-cmd=stop]").click()
        expect(card.locator(".recorder-status")).to_contain_text("stop · success · stopped")
        card.locator("button[data-cmd=status]").click()  # asks the recorder, now
        expect(card.locator(".recorder-status")).to_contain_text("status · success · stopped")
        commands = fleetprobe.call("GET", "/recorder/cam7/commands?limit=5")
        assert [c["cmd"] for c in commands] == ["status", "stop", "start"]

        # Sent by someone else, and a schedule added: the page follows both live.
        fleetprobe.post("/recorder/cam7/start", {})
        expect(card.locator(".recorder-status")).to_contain_text("start · success · started")
        fleetprobe.post(
            "/recorder/schedules", {"task_id": "cam8", "cmd": "status", "cron": "0 3 * * *"}
        )
        expect(schedules.locator("tr", has_text="cam8")).to_contain_text("cron 0 3 * * *")
        expect(page.locator('#recorder-tasks [data-task="cam8"]')).to_have_count(1)
    finally:
        simulator.stop()


def test_devices_changed_elsewhere_appear_and_the_filters_narrow_the_table(
    page: Page, fleetprobe: Fleetprobe
) -> None:
    # Created, changed and deleted through the API: the feed brings each to the table.
    alpha = new_device(fleetprobe, "filter-alpha", "http://127.0.0.1:9/a", is_active=False)
    beta = new_device(fleetprobe, "filter-beta", "http://127.0.0.1:9/b", is_active=False)
    expect(row_of(page, alpha)).to_have_count(1)
    expect(row_of(page, beta).locator(".state")).to_have_text("paused")
    fleetprobe.call("PATCH", f"/devices/{beta}", {"name": "filter-beta-2"})
    expect(row_of(page, beta).locator("a.name")).to_have_text("filter-beta-2")

    rows = page.locator("#devices tbody tr:visible")
    page.locator("#filter").fill("FILTER-")  # name or address, any case
    expect(rows).to_have_count(2)
    page.locator("#filter").fill("127.0.0.1:9/b")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", str(beta))
    page.locator("#filter").fill("filter")
    page.locator("#state-filter").select_option("up")
    expect(rows).to_have_count(0)
    page.locator("#state-filter").select_option("paused")
    expect(rows).to_have_count(2)

    fleetprobe.call("DELETE", f"/devices/{alpha}")
    expect(row_of(page, alpha)).to_have_count(0)
    expect(rows).to_have_count(1)
