"""A dashboard with 1,000 devices: the devices written straight into the database, a burst
of live events published on the events subject, and a MutationObserver that says which
rows of the table the burst wrote to.  Used by ``tests/system/test_dashboard_fleet.py``
and, as a script, to measure the page: ``python -m tests.dashboard_fleet`` (prints the
figures written into docs/performance.md; needs ``chromium`` on PATH)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from playwright.sync_api import Page, expect

from jobs.events import CHECK_CREATED, DEVICE_STATE_CHANGED, EventPublisher
from tests.browser import chromium
from tests.processes import Fleetprobe

FLEET = 1000
FINAL_MS = 777.0  # the latency of each touched device's last event in a burst

# Installs the observer: every <tr> remembered, every mutation under the table body
# mapped to its row; the body's own child list changing means rows came or went.
OBSERVE = """() => {
  const tbody = document.querySelector("#devices tbody");
  const seen = { rows: [...tbody.children], touched: new Set(), bodyChanges: 0, mutations: 0,
                 last: 0 };
  const note = (list) => {
    for (const m of list) {
      seen.mutations += 1;
      if (m.target === tbody) { seen.bodyChanges += 1; continue; }
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const row = node && node.closest("tr");
      if (row) seen.touched.add(Number(row.dataset.id));
    }
    seen.last = performance.now();
  };
  seen.observer = new MutationObserver(note);
  seen.observer.observe(tbody, { subtree: true, childList: true, attributes: true,
                                 characterData: true });
  seen.flush = () => note(seen.observer.takeRecords());
  window.__fleet = seen;
}"""

REPORT = """() => {
  const seen = window.__fleet;
  seen.flush();
  seen.observer.disconnect();
  const now = [...document.querySelector("#devices tbody").children];
  return { touched: [...seen.touched].sort((a, b) => a - b), bodyChanges: seen.bodyChanges,
           mutations: seen.mutations, rows: now.length,
           sameRows: now.length === seen.rows.length && now.every((r, i) => r === seen.rows[i]),
           last: seen.last };
}"""

# Every row of ``ids`` shows ``text`` as its latency.
APPLIED = """([ids, text]) => ids.every((id) => {
  const cell = document.querySelector(`#devices tr[data-id="${id}"] [data-cell="latency"]`);
  return cell && cell.textContent === text;
})"""


def wait_applied(page: Page, ids: list[int], text: str) -> None:
    """Until the burst naming ``ids`` (in that order, last events last) is drawn: its very
    last event's row first (the events are handled in order and the dirty rows drawn
    together, so every earlier one is then drawn too; one look-up a poll, so that the
    waiting does not load the page it measures), then every row, once."""
    page.wait_for_function(APPLIED, arg=[ids[-1:], text], polling=50, timeout=60_000)
    assert page.evaluate(APPLIED, [ids, text]) is True


def _db_time(t: datetime) -> str:
    # storage.types.UTCDateTime stores naive UTC in SQLite
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def insert_devices(db: Path, n: int = FLEET) -> list[int]:
    """``n`` active devices (never probed: the server runs with --no-scheduler), created two
    days ago, in one transaction; returns their ids."""
    then = _db_time(datetime.now(UTC) - timedelta(days=2))
    rows = [
        (f"dev-{i:04d}", f"http://127.0.0.1:9/{i}", 1, 60, then, then, 3, 1, 1, 1, 0, 0)
        for i in range(n)
    ]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO devices (name, address, is_active, interval_seconds, created_at,"
            " updated_at, failure_threshold, success_threshold, follow_redirects, verify_tls,"
            " reminder_every_minutes, public) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id")]


def insert_history(db: Path, device_id: int) -> None:
    """Up since 10 days, down 12 hours ago, up again 6 hours ago: 75 % over 24 h,
    97.5 % over 30 days (the 20 days before are unknown, not counted)."""
    now = datetime.now(UTC)
    changes = [("unknown", "up", timedelta(days=10)), ("up", "down", timedelta(hours=12)),
               ("down", "up", timedelta(hours=6))]  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO state_changes (device_id, revision, from_state, to_state, at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (device_id, i + 1, f, t, _db_time(now - ago))
                for i, (f, t, ago) in enumerate(changes)
            ],
        )
        conn.execute(
            "INSERT INTO device_health (device_id, state, since, revision, health, updated_at)"
            " VALUES (?, 'up', ?, 3, '{}', ?)",
            (device_id, _db_time(now - timedelta(hours=6)), _db_time(now)),
        )


def burst(ids: list[int], per_device: int, down: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """``per_device`` check.created events for each of ``ids``, interleaved (the last one
    of each at FINAL_MS), and a state change to down for each of ``down``."""
    start = datetime.now(UTC)
    events: list[tuple[str, dict[str, Any]]] = []
    for k in range(per_device):
        for device_id in ids:
            at = start + timedelta(milliseconds=k)
            latency = FINAL_MS if k == per_device - 1 else 10.0 + k
            events.append(
                (CHECK_CREATED, {
                    "id": None, "device_id": device_id, "status_up": True, "outcome": "up",
                    "latency_ms": latency, "checked_at": at.isoformat().replace("+00:00", "Z"),
                    "run_key": f"burst-{start.timestamp()}-{device_id}-{k}",
                })
            )  # fmt: skip
    for device_id in down:
        events.append(
            (DEVICE_STATE_CHANGED, {
                "device_id": device_id, "from": "unknown", "to": "down",
                "since": start.isoformat().replace("+00:00", "Z"), "cause": "burst",
            })
        )  # fmt: skip
    return events


def db_installation(db: Path) -> str:
    """The installation id of the server's database (its events carry it: jobs.events)."""
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT id FROM installation").fetchone()[0])


def publish(nats_url: str, events: list[tuple[str, dict[str, Any]]], installation: str) -> None:
    """The events on the events subject, as installation ``installation`` publishes them,
    back to back."""

    async def run() -> None:
        nc = await nats.connect(nats_url)
        try:
            publisher = EventPublisher(nc, "items.updates", "test-burst", installation)
            for kind, payload in events:
                await publisher.publish(kind, payload)
            await nc.flush()
        finally:
            await nc.drain()

    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(run())).result(timeout=60)


def open_fleet(page: Page, fp: Fleetprobe, n: int) -> list[str]:
    """The dashboard loaded with ``n`` rows, live, its /status pages answered and drawn;
    returns the paths of the requests the page made."""
    paths: list[str] = []
    answered: list[str] = []
    page.on("request", lambda r: paths.append(r.url.removeprefix(fp.url)))
    page.on("requestfinished", lambda r: answered.append(r.url.removeprefix(fp.url)))
    page.goto(fp.url + "/")
    expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
    expect(page.locator("#devices tbody tr")).to_have_count(n, timeout=60_000)
    pages = n // 1000 + 1  # the last one short (or empty)
    deadline = time.monotonic() + 120
    while sum(p.startswith("/status") for p in answered) < pages:
        assert time.monotonic() < deadline, "the page did not read /status"
        page.wait_for_timeout(50)
    for _ in range(2):  # the frame that draws what /status said, and one after it
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    return paths


def insert_checks(db: Path, device_id: int, latencies: list[float]) -> None:
    """Results of ``device_id``, a minute apart, the last one a minute ago."""
    now = datetime.now(UTC)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO check_results (device_id, status_up, latency_ms, checked_at, run_key,"
            " source, in_maintenance) VALUES (?, 1, ?, ?, ?, 'test', 0)",
            [
                (device_id, ms, _db_time(now - timedelta(minutes=len(latencies) - i)),
                 f"seeded-{device_id}-{i}")
                for i, ms in enumerate(latencies)
            ],
        )  # fmt: skip


# Chromium's own counters (CDP Performance.getMetrics), cumulative seconds of main-thread work.
METRICS = ("TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")
ROUNDS = 5


def measure_burst(
    page: Page, fp: Fleetprobe, touched: list[int], per: int, n: int
) -> dict[str, float]:
    """Burst number ``n`` (each its own, so that its last latency is new on every row it
    names): first event's arrival to the last row written, the long tasks,
    and Chromium's main-thread time by kind (ms)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def metrics() -> dict[str, float]:
        got = cdp.send("Performance.getMetrics")["metrics"]
        return {m["name"]: m["value"] for m in got if m["name"] in METRICS}

    page.evaluate("() => { window.__arrivals = []; window.__long = []; }")
    page.evaluate(OBSERVE)
    events = burst(touched, per, [])
    final = FINAL_MS + n + 1  # a new final latency: every burst writes
    for _, payload in events:
        if payload["latency_ms"] == FINAL_MS:
            payload["latency_ms"] = final
    before = metrics()
    publish(fp.env["NATS_URL"], events, db_installation(fp.tmp / "monitoring.db"))
    wait_applied(page, touched, f"{final:.0f} ms")
    after = metrics()
    report = page.evaluate(REPORT)
    cdp.detach()
    return {
        "first_event_to_last_row_write": report["last"]
        - page.evaluate("() => window.__arrivals[0]"),
        "long_tasks": sum(page.evaluate("() => window.__long")),
        **{k: (after[k] - before[k]) * 1000 for k in METRICS},
    }


def main() -> int:
    """Figures: the first load of 1,000 devices, and bursts of 1,000 live events (medians
    of ROUNDS), printed as JSON lines."""
    with tempfile.TemporaryDirectory(prefix="fleetprobe-fleet-") as tmp:
        fp = Fleetprobe(Path(tmp), "--no-scheduler")
        fp.start()
        try:
            ids = insert_devices(Path(tmp) / "monitoring.db")
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                # The moment each WebSocket message arrives, before the page handles it.
                page.add_init_script(
                    """(() => { const W = window.WebSocket; window.__arrivals = [];
                    window.WebSocket = class extends W { constructor(...a) { super(...a);
                      this.addEventListener("message", () => window.__arrivals.push(
                        performance.now())); } }; })()"""
                )
                page.add_init_script(
                    """(() => { window.__long = []; new PerformanceObserver((l) => {
                      for (const e of l.getEntries()) window.__long.push(e.duration); })
                      .observe({ type: "longtask", buffered: true }); })()"""
                )
                began = time.monotonic()
                paths = open_fleet(page, fp, len(ids))
                print(json.dumps({
                    "first_load_s": round(time.monotonic() - began, 1), "devices": len(ids),
                    "requests": len(paths),
                }))  # fmt: skip
                # Interleaved, so that the machine's load falls on both alike.
                runs: dict[int, list[dict[str, float]]] = {}
                count = itertools.count()
                for _ in range(ROUNDS):
                    for touched, per in ((ids[:100], 10), (ids, 1)):
                        got = measure_burst(page, fp, touched, per, next(count))
                        runs.setdefault(len(touched), []).append(got)
                for rows, bursts in runs.items():
                    medians = {
                        f"{k}_ms": round(statistics.median(b[k] for b in bursts)) for k in bursts[0]
                    }
                    print(json.dumps({"events": 1000, "rows": rows, **medians}))
        finally:
            fp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
