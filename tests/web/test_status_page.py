"""``web/status_page.py``: the public status page and badges over plain HTTP; only public
devices, nothing private leaked, no token needed, nothing writable; their uptime is the
figure of ``GET /devices/{id}/uptime``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from core.settings import Settings
from storage.models import CheckRollup, Device, DeviceHealth, StateChange
from tests.helpers import running_worker
from tests.web.history import add_changes, counted_statements
from tests.webapp import WebApp, serve_app
from web.badges import format_uptime

SECRET_ADDRESS = "http://10.9.8.7:8443/private-health"
SECRET_ERROR = "connection refused by secret-host.internal"


async def add_device(web: WebApp, name: str, *, public: bool, address: str = SECRET_ADDRESS) -> int:
    r = await web.client.post("/devices", json={"name": name, "address": address})
    assert r.status_code == 201, r.text
    device_id: int = r.json()["id"]
    if public:  # the API field is the pipeline's; the column is already there
        async with web.services.engine.begin() as conn:
            await conn.execute(
                update(Device.__table__)  # type: ignore[attr-defined]
                .where(col(Device.id) == device_id)
                .values(public=True)
            )
    return device_id


async def add_check(web: WebApp, device_id: int, up: bool, at: datetime) -> None:
    body = {"status_up": up, "latency_ms": 12.0, "checked_at": at.isoformat()}
    if not up:
        body |= {"status_code": 503, "error": SECRET_ERROR}
    r = await web.client.post(f"/devices/{device_id}/checks", json=body)
    assert r.status_code == 201, r.text


# The page's own times (2026-12-07 21:00:00.950300+00:00, 2026-12-07 21:05 UTC) may hold
# any digits: a leaked status code is looked for in the rest of the page.
TIMES = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z| UTC)?")


def without_times(page: str) -> str:
    """The page with its times taken out::

    >>> without_times("2026-12-07 21:00:00.950300+00:00 | 2026-12-07 21:05 UTC | HTTP 503")
    ' |  | HTTP 503'
    """
    return TIMES.sub("", page)


def rows_of(page: str) -> dict[str, tuple[str, str]]:
    """name -> (state, uptime) from the page's device rows."""
    found = re.findall(
        r'<td class="name">([^<]*)</td>\s*<td><span class="state state-(\w+)">\w+</span></td>'
        r'.*?<td class="uptime">([^<]*)</td>',
        page,
        re.S,
    )
    return {name: (state, uptime) for name, state, uptime in found}


async def test_the_status_page_shows_public_devices_only_with_state_and_uptime(
    web: WebApp,
) -> None:
    now = datetime.now(UTC)
    shown = await add_device(web, "api", public=True)
    broken = await add_device(web, "db", public=True)
    hidden = await add_device(web, "secret-router", public=False)
    for minutes, up in ((30, True), (20, True), (10, True), (5, False)):
        await add_check(web, shown, up, now - timedelta(minutes=minutes))
    # down after failure_threshold (3) failing results in a row
    for minutes in (3, 2, 1):
        await add_check(web, broken, False, now - timedelta(minutes=minutes))
    await add_check(web, hidden, True, now - timedelta(minutes=1))
    await add_check(web, shown, True, now - timedelta(minutes=1))

    async with httpx.AsyncClient(base_url=web.url) as anonymous:
        r = await anonymous.get("/status-page")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page = r.text
    # api's one failing result is below the failure threshold: it was never down, so up
    # all its known time (4 of its 5 results were up: uptime is time, not results)
    assert rows_of(page) == {"api": ("up", "100%"), "db": ("down", "0%")}
    assert "secret-router" not in page
    # no address, status code or error text of any device
    for leaked in (SECRET_ADDRESS, "10.9.8.7", SECRET_ERROR, "503"):
        assert leaked not in without_times(page)
    assert "Open incidents" in page and "<strong>db</strong> is down" in page
    assert "Some systems are down" in page
    assert "<script" not in page and "<form" not in page and "style=" not in page


async def test_names_are_escaped_on_the_page_and_in_badges(web: WebApp) -> None:
    device_id = await add_device(web, '<script>alert("x")</script>', public=True)
    page = (await web.client.get("/status-page")).text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    svg = (await web.client.get(f"/badges/{device_id}/status.svg")).text
    assert "<script" not in svg


async def test_a_health_row_decides_the_state_over_the_latest_check(web: WebApp) -> None:
    device_id = await add_device(web, "edge", public=True)
    await add_check(web, device_id, True, datetime.now(UTC))
    since = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    async with web.services.engine.begin() as conn:
        await conn.execute(
            update(DeviceHealth.__table__)  # type: ignore[attr-defined]
            .where(col(DeviceHealth.device_id) == device_id)
            .values(state="degraded", since=since, revision=1, health={}, updated_at=since)
        )  # fmt: skip
    page = (await web.client.get("/status-page")).text
    assert rows_of(page)["edge"][0] == "degraded"
    assert "2026-01-02 03:04 UTC" in page
    badge = (await web.client.get(f"/badges/{device_id}/status.json")).json()
    assert badge == {
        "schemaVersion": 1,
        "label": "status",
        "message": "degraded",
        "color": "yellow",
    }


async def test_badges_in_svg_and_shields_json_for_a_public_device(web: WebApp) -> None:
    hours = timedelta(hours=1)
    device_id = await add_device(web, "api", public=True)
    # up for 30 hours but for one, two hours ago
    history = (("unknown", "up", 30 * hours), ("up", "down", 2 * hours), ("down", "up", hours))
    await add_changes(web.services.engine, device_id, *history)

    status = await web.client.get(f"/badges/{device_id}/status.svg")
    assert status.status_code == 200 and status.headers["content-type"] == "image/svg+xml"
    assert ">status</text>" in status.text and ">up</text>" in status.text
    assert status.headers["content-security-policy"].startswith("default-src 'none'")

    month = (await web.client.get(f"/badges/{device_id}/uptime.json")).json()
    # 29 of the 30 known hours (the time before the first change is unknown)
    assert month["message"] == "96.67%" and month["label"] == "uptime 30d"
    assert month["color"] == "orange" and month["schemaVersion"] == 1
    day = (await web.client.get(f"/badges/{device_id}/uptime.json?window=24h")).json()
    assert day["message"] == "95.83%" and day["label"] == "uptime 24h"  # 23 of 24 hours
    svg = await web.client.get(f"/badges/{device_id}/uptime.svg?window=7d")
    assert ">96.67%</text>" in svg.text and ">uptime 7d</text>" in svg.text


async def test_rollups_counting_results_do_not_decide_the_uptime(web: WebApp) -> None:
    device_id = await add_device(web, "rolled", public=True)
    await add_changes(web.services.engine, device_id, ("unknown", "up", timedelta(hours=5)))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    async with web.services.engine.begin() as conn:
        await conn.execute(
            insert(CheckRollup.__table__).values(  # type: ignore[attr-defined]
                device_id=device_id, period="h", start=hour, checks=200, up=100, degraded=0,
                down=100, in_maintenance=0,
            )
        )  # fmt: skip
    # half the results were down, but never three in a row: the device stayed up
    badge = (await web.client.get(f"/badges/{device_id}/uptime.json")).json()
    assert badge["message"] == "100%" and badge["color"] == "brightgreen"
    assert rows_of((await web.client.get("/status-page")).text)["rolled"] == ("up", "100%")


async def test_the_page_the_badge_and_the_uptime_api_agree_over_an_outage_in_maintenance(
    web: WebApp,
) -> None:
    hours = timedelta(hours=1)
    engine = web.services.engine
    patched = await add_device(web, "patched", public=True)
    steady = await add_device(web, "steady", public=True)
    now = datetime.now(UTC)
    # results that, counted, would say 33 %: one up, two down (stored in no maintenance)
    for minutes, up in ((50, True), (40, False), (30, False)):
        await add_check(web, patched, up, now - timedelta(minutes=minutes))
    # up for 10 days but for 2 hours (6 to 4 hours ago); long known, so the figures stay
    # put while the window slides on between the requests
    history = (("unknown", "up", 240 * hours), ("up", "down", 6 * hours), ("down", "up", 4 * hours))
    for device_id in (patched, steady):
        await add_changes(engine, device_id, *history)
    # the outage's second hour was maintenance of patched only, declared after the fact
    changes = (await web.client.get(f"/devices/{patched}/state-changes")).json()
    went_down = datetime.fromisoformat(next(c["at"] for c in changes if c["to"] == "down"))
    r = await web.client.post(
        "/maintenance",
        json={
            "name": "patch",
            "start": (went_down + hours).isoformat(),
            "duration": "PT1H",
            "device_ids": [patched],
        },
    )
    assert r.status_code == 201, r.text

    async def api(device_id: int, window: str) -> dict[str, Any]:
        r = await web.client.get(f"/devices/{device_id}/uptime", params={"windows": window})
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()["windows"][0]
        return found

    async def badge(device_id: int, window: str) -> str:
        r = await web.client.get(f"/badges/{device_id}/uptime.json", params={"window": window})
        assert r.status_code == 200, r.text
        message: str = r.json()["message"]
        return message

    month = await api(patched, "30d")
    assert month["maintenance_seconds"] == 3600.0
    # one hour down of the 239 known outside maintenance
    assert abs(month["uptime_percent"] - 100 * 238 / 239) < 0.001
    page = rows_of((await web.client.get("/status-page")).text)
    assert page["patched"][1] == await badge(patched, "30d") == "99.58%"
    assert format_uptime(month["uptime_percent"]) == "99.58%"
    # not patched's window: down 2 of 240 hours, the same on all three
    assert page["steady"][1] == await badge(steady, "30d") == "99.17%"
    assert format_uptime((await api(steady, "30d"))["uptime_percent"]) == "99.17%"
    # another window, the same agreement: down 1 of the 23 known outside maintenance
    day = await api(patched, "24h")
    assert day["maintenance_seconds"] == 3600.0
    assert format_uptime(day["uptime_percent"]) == await badge(patched, "24h") == "95.65%"


async def test_the_status_page_takes_the_same_few_queries_for_many_devices(
    web: WebApp,
) -> None:
    engine = web.services.engine
    hours = timedelta(hours=1)
    history = (("unknown", "up", 300 * hours), ("up", "down", 4 * hours), ("down", "up", hours))
    for i in range(20):
        device_id = await add_device(web, f"d{i:02}", public=True)
        await add_changes(engine, device_id, *history)
        if i == 1:
            with counted_statements(engine) as few:
                assert len(rows_of((await web.client.get("/status-page")).text)) == 2
    with counted_statements(engine) as many:
        rows = rows_of((await web.client.get("/status-page")).text)
    assert len(rows) == 20 and rows["d19"] == ("up", "99%")  # down 3 of 300 hours
    # the public devices, the maintenance windows, health rows, state changes
    assert len(many) == len(few) <= 4, many


async def test_private_and_missing_devices_get_the_same_404(web: WebApp) -> None:
    private = await add_device(web, "private", public=False)
    await add_check(web, private, True, datetime.now(UTC))
    for path in ("status.svg", "status.json", "uptime.svg", "uptime.json"):
        for device_id in (private, 999_999):
            r = await web.client.get(f"/badges/{device_id}/{path}")
            assert r.status_code == 404, (path, r.text)
            assert r.json() == {"detail": f"no public device {device_id}"}


@pytest.mark.parametrize("window", ["1w", "0d", "401d", "24", "-1h", "1.5d", "24h,7d", ""])
async def test_a_bad_window_is_a_422_naming_it(web: WebApp, window: str) -> None:
    device_id = await add_device(web, "api", public=True)
    r = await web.client.get(f"/badges/{device_id}/uptime.json", params={"window": window})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["query", "window"] and repr(window) in error["msg"]


async def test_nothing_public_is_writable(web: WebApp) -> None:
    device_id = await add_device(web, "api", public=True)
    for path in ("/status-page", f"/badges/{device_id}/status.svg"):
        r = await web.client.post(path, json={})
        assert r.status_code == 405


TOKEN = "status-page-token"


@pytest.fixture
async def locked(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    with_token = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        running_worker(with_token, worker=False) as broker,
        serve_app(with_token, engine, broker) as web,
    ):
        yield web


async def test_with_a_token_the_public_face_and_the_dashboard_files_need_none(
    locked: WebApp,
) -> None:
    device_id = await add_device(locked, "api", public=True)
    async with httpx.AsyncClient(base_url=locked.url) as anonymous:
        for path in (
            "/status-page",
            f"/badges/{device_id}/status.svg",
            f"/badges/{device_id}/uptime.json",
            "/",
            "/dashboard/assets/app.js",
        ):
            assert (await anonymous.get(path)).status_code == 200, path
        # ... but the API behind the dashboard does
        assert (await anonymous.get("/devices")).status_code == 401
        assert (await anonymous.get(f"/devices/{device_id}/checks")).status_code == 401


async def test_without_a_health_row_since_is_where_the_latest_streak_began(
    web: WebApp,
) -> None:
    base = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    device_id = await add_device(web, "streaky", public=True)
    for minutes, up in ((0, True), (10, False), (20, False), (30, False)):
        await add_check(web, device_id, up, base + timedelta(minutes=minutes))
    # every device has a health row now (jobs.probe.health): take it away to read the
    # fallback (a database whose rows predate it)
    async with web.services.engine.begin() as conn:
        for table in (DeviceHealth.__table__, StateChange.__table__):  # type: ignore[attr-defined]
            await conn.execute(delete(table).where(table.c.device_id == device_id))
    page = (await web.client.get("/status-page")).text
    assert rows_of(page)["streaky"][0] == "down"
    assert 'since\n          <time datetime="2026-05-01T10:10:00+00:00">' in page
    await add_check(web, device_id, True, base + timedelta(minutes=40))
    page = (await web.client.get("/status-page")).text
    assert rows_of(page)["streaky"][0] == "up" and "2026-05-01 10:40 UTC" in page
    assert "Open incidents" not in page


async def add_api_device(web: WebApp, name: str, address: str, **flags: bool) -> int:
    """A device made through the API with its ``public`` / ``public_details`` flags."""
    r = await web.client.post("/devices", json={"name": name, "address": address, **flags})
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in flags} == flags
    device_id: int = r.json()["id"]
    return device_id


async def test_public_details_show_the_address_and_last_check_of_that_device_only(
    web: WebApp,
) -> None:
    now = datetime.now(UTC)
    open_address = "http://198.51.100.7:8080/health"
    open_ = await add_api_device(web, "open", open_address, public=True, public_details=True)
    closed = await add_api_device(web, "closed", SECRET_ADDRESS, public=True)
    for device_id in (open_, closed):
        for minutes in (3, 2, 1):  # down after the failure threshold (3)
            await add_check(web, device_id, False, now - timedelta(minutes=minutes))
    page = (await web.client.get("/status-page")).text
    assert rows_of(page) == {"open": ("down", "0%"), "closed": ("down", "0%")}
    [details] = re.findall(r'<tr class="details">(.*?)</tr>', page, re.S)
    assert f'<code class="address">{open_address}</code>' in details
    assert '<span class="latency">12 ms</span>' in details
    assert '<span class="status-code">HTTP 503</span>' in details
    assert f'<span class="error">{SECRET_ERROR}</span>' in details
    last = (now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert "last check\n            <time" in details and last in details
    # the open incident says why; the other device's says nothing more
    [incident] = re.findall(r"<li><strong>open</strong> is down.*?</li>", page, re.S)
    assert SECRET_ERROR in incident
    closed_incident = r"<li><strong>closed</strong> is down since\s*<time[^>]*>[^<]*</time></li>"
    assert re.search(closed_incident, page)
    # one details row, of "open": nothing of "closed" besides its name, state and uptime
    assert page.count(SECRET_ERROR) == 2 and "10.9.8.7" not in page
    # the badges stay as they were: the state only, for either device
    for device_id in (open_, closed):
        badge = (await web.client.get(f"/badges/{device_id}/status.json")).json()
        assert badge == {"schemaVersion": 1, "label": "status", "message": "down", "color": "red"}

    # taken back by a PATCH: the address and error are gone from the page
    r = await web.client.patch(f"/devices/{open_}", json={"public_details": False})
    assert r.status_code == 200 and r.json()["public_details"] is False
    page = (await web.client.get("/status-page")).text
    assert open_address not in page and SECRET_ERROR not in page and "HTTP 503" not in page
    assert '<tr class="details">' not in page


async def test_a_private_device_with_public_details_shows_nothing(web: WebApp) -> None:
    hidden = await add_api_device(web, "hidden", SECRET_ADDRESS, public_details=True)
    await add_check(web, hidden, False, datetime.now(UTC))
    page = (await web.client.get("/status-page")).text
    assert rows_of(page) == {} and "No public devices" in page
    for leaked in ("hidden", SECRET_ADDRESS, "10.9.8.7", SECRET_ERROR, "503"):
        assert leaked not in without_times(page)
    for path in ("status.svg", "status.json", "uptime.json"):
        assert (await web.client.get(f"/badges/{hidden}/{path}")).status_code == 404


async def test_a_device_that_was_never_checked_shows_its_address_only(web: WebApp) -> None:
    await add_api_device(web, "new", "tcp://192.0.2.1:22", public=True, public_details=True)
    page = (await web.client.get("/status-page")).text
    [details] = re.findall(r'<tr class="details">(.*?)</tr>', page, re.S)
    assert '<code class="address">tcp://192.0.2.1:22</code>' in details
    assert "not checked yet" in details and "HTTP" not in details and " ms<" not in details


async def test_details_are_escaped_on_the_page(web: WebApp) -> None:
    device_id = await add_api_device(
        web, "html", "http://127.0.0.1:9/ok", public=True, public_details=True
    )
    markup = '<img src=x onerror="alert(1)">'
    # whatever the address validation lets through, the page must escape what is stored
    async with web.services.engine.begin() as conn:
        await conn.execute(
            update(Device.__table__)  # type: ignore[attr-defined]
            .where(col(Device.id) == device_id)
            .values(address=f"http://127.0.0.1:9/{markup}")
        )
    body = {"status_up": False, "latency_ms": 3.25, "error": f"boom {markup}</td>"}
    r = await web.client.post(f"/devices/{device_id}/checks", json=body)
    assert r.status_code == 201, r.text
    page = (await web.client.get("/status-page")).text
    assert "<img" not in page and 'onerror="' not in page and "boom &lt;img" in page
    assert "http://127.0.0.1:9/&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    assert "&lt;/td&gt;" in page and '<span class="latency">3.2 ms</span>' in page
