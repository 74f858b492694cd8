"""Regenerate ``docs/dashboard.png``, ``docs/device.png`` and ``docs/status-page.png``:
``python -m tests.screenshots``.

Starts ``python scheduler.py`` in a temporary folder (its own NATS, SQLite and ports) and
a local HTTP target, adds a few devices (some slow, one failing, one paused, one snoozed,
one in maintenance, three on the status page; a webhook channel to a local receiver),
lets them be probed for a while, then photographs the dashboard, the failing device's page
and the status page in Chromium (Debian's ``chromium`` on PATH, driven by Playwright)."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect

from core.natsserver import free_port
from tests.browser import chromium
from tests.jobs.alerts.receiver import receiver
from tests.processes import ROOT, Fleetprobe
from tests.targets import ThreadedServer
from tests.targets import app as target_app

DEVICES = [
    # name, path on the target, public, active
    ("api-gateway", "/ok", True, True),
    ("checkout", "/slow?ms=120", True, True),
    ("search", "/slow?ms=40", False, True),
    ("billing", "/status/503", True, True),
    ("legacy-ftp-bridge", "/ok", False, False),
]
PROBE_SECONDS = 20


def main() -> int:
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory(prefix="fleetprobe-shots-") as tmp, receiver() as rx:
        target = ThreadedServer(target_app, free_port()).start()
        fp = Fleetprobe(Path(tmp))
        fp.start()
        try:
            fp.post("/channels", {"name": "ops-hook", "kind": "webhook", "url": rx.url,
                                  "is_default": True})  # fmt: skip
            ids = {}
            for name, path, _, active in DEVICES:
                created = fp.post(
                    "/devices",
                    {
                        "name": name,
                        "address": target.url + path,
                        "interval_seconds": 2,
                        "is_active": active,
                        "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 500"],
                    },
                )
                ids[name] = created["id"]
            # The alert marks: one device snoozed, one in a maintenance window.
            now = datetime.now(UTC)
            fp.post(
                f"/devices/{ids['search']}/snooze",
                {"until": (now + timedelta(hours=2)).isoformat()},
            )
            fp.post(
                "/maintenance",
                {"name": "db upgrade", "device_ids": [ids["checkout"]], "duration": "PT2H",
                 "start": (now - timedelta(minutes=5)).isoformat()},
            )  # fmt: skip
            with sqlite3.connect(Path(tmp) / "monitoring.db") as db:
                public = [name for name, _, is_public, _ in DEVICES if is_public]
                db.executemany(
                    "UPDATE devices SET public = 1 WHERE name = ?", [(n,) for n in public]
                )
            time.sleep(PROBE_SECONDS)  # a sparkline's worth of checks
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 520})
                page.goto(fp.url + "/")
                expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
                expect(page.locator("#devices tbody tr")).to_have_count(len(DEVICES))
                page.wait_for_timeout(1500)  # every row's checks loaded
                page.screenshot(path=str(docs / "dashboard.png"))
                page.set_viewport_size({"width": 1280, "height": 900})
                page.goto(f"{fp.url}/#/devices/{ids['billing']}")
                expect(page.locator("#device-alerts .notif").first).to_have_text("sent")
                expect(page.locator("#device-view .verdicts").first).to_be_visible()
                page.screenshot(path=str(docs / "device.png"), full_page=True)
                page.set_viewport_size({"width": 900, "height": 480})
                page.goto(fp.url + "/status-page")
                page.screenshot(path=str(docs / "status-page.png"), full_page=True)
        finally:
            fp.stop()
            target.stop()
    print(f"wrote {docs / 'dashboard.png'}, {docs / 'device.png'} and {docs / 'status-page.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
