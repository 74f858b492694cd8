"""``GET /metrics`` after probes through the real pipeline (the app, the queue, an
in-process worker, a local target), parsed by prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from core.settings import Settings
from storage.fleet import FleetDevice
from storage.models import DeviceHealth
from tests.helpers import wait_for
from tests.jobs.probe.kinds.servers import http_ok, listening, self_signed
from tests.webapp import WebApp, served
from web.metrics import QueueInfo, fleet_families, queue_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TOKEN = "metrics-test-token"


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    async with served(settings, engine, worker=True) as app:
        yield app


def parse(text: str) -> tuple[set[str], Samples]:
    """The family names and every sample of a scrape."""
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return names, samples


async def scrape(client: httpx.AsyncClient) -> tuple[set[str], Samples]:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def key(metric: str, /, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (metric, tuple(sorted(labels.items())))


async def add(web: WebApp, name: str, address: str, active: bool = True) -> int:
    body = {"name": name, "address": address, "is_active": active, "timeout_seconds": 2}
    r = await web.client.post("/devices", json=body)
    assert r.status_code == 201, r.text
    device_id: int = r.json()["id"]
    return device_id


async def test_probes_are_counted_and_the_fleet_is_read_from_the_database(
    web: WebApp, http_target: str, engine: AsyncEngine
) -> None:
    _, before = await scrape(web.client)
    up = await add(web, "up", f"{http_target}/ok")
    down = await add(web, "down", f"{http_target}/status/503")
    off = await add(web, "off", f"{http_target}/ok", active=False)

    r = await web.client.post(
        "/jobs/probe", params={"wait": "true"}, json={"device_ids": [up, down]}
    )
    assert r.status_code == 200 and r.json()["complete"] is True, r.text

    names, after = await scrape(web.client)
    assert {
        "fleetprobe_devices",
        "fleetprobe_device_state",
        "fleetprobe_device_latency_seconds",
        "fleetprobe_certificate_expiry_seconds",  # declared, no sample: no https:// device
        "fleetprobe_probes",
        "fleetprobe_probe_duration_seconds",
        "fleetprobe_slot_lateness_seconds",
        "fleetprobe_recorder_commands",
        "fleetprobe_notifications",
        "fleetprobe_queue_pending",
        "fleetprobe_queue_ack_pending",
        "fleetprobe_queue_redelivered_total",
        "fleetprobe_websocket_clients",
    } <= names

    def delta(metric: str, /, **labels: str) -> float:
        k = key(metric, **labels)
        return after[k] - before.get(k, 0.0)

    assert delta("fleetprobe_probes_total", outcome="up") == 1
    assert delta("fleetprobe_probes_total", outcome="down") == 1
    assert delta("fleetprobe_probe_duration_seconds_count") == 2
    assert delta("fleetprobe_probe_duration_seconds_sum") > 0
    # Manual probes have no slot: no lateness to observe.
    assert delta("fleetprobe_slot_lateness_seconds_count") == 0

    # The latency gauge is the stored result's latency.
    for device_id in (up, down):
        checks = (await web.client.get(f"/devices/{device_id}/checks")).json()
        assert len(checks) == 1
        name = "up" if device_id == up else "down"
        gauge = after[key("fleetprobe_device_latency_seconds", device_id=str(device_id), name=name)]
        assert gauge == pytest.approx(checks[0]["latency_ms"] / 1000)
    assert not any(
        k[0] == "fleetprobe_device_latency_seconds" and ("device_id", str(off)) in k[1]
        for k in after
    )

    # States as device_health holds them (no row: unknown); the inactive one is paused.
    async with engine.connect() as conn:
        stmt = select(col(DeviceHealth.device_id), col(DeviceHealth.state))
        rows = dict((await conn.execute(stmt)).all())
    expected = {up: rows.get(up, "unknown"), down: rows.get(down, "unknown"), off: "paused"}
    for device_id, state in expected.items():
        labels = {
            "device_id": str(device_id),
            "name": {up: "up", down: "down", off: "off"}[device_id],
        }
        assert after[key("fleetprobe_device_state", **labels, state=state)] == 1
        others = [
            after[key("fleetprobe_device_state", **labels, state=s)]
            for s in ("up", "degraded", "down", "unknown", "paused")
            if s != state
        ]
        assert others == [0, 0, 0, 0]
    counted = {
        s: after[key("fleetprobe_devices", state=s)] for s in ("up", "down", "unknown", "paused")
    }
    assert sum(counted.values()) == 3 and counted["paused"] == 1

    assert after[key("fleetprobe_queue_up")] == 1
    assert after[key("fleetprobe_queue_pending")] == 0  # both jobs were fetched and run
    assert after[key("fleetprobe_queue_ack_pending")] >= 0
    assert after[key("fleetprobe_queue_redelivered_total")] == 0


async def test_certificate_expiry_is_read_from_probes_of_tls_and_https_devices(
    web: WebApp, tmp_path: Path
) -> None:
    """A local TLS server whose self-signed certificate expires in two days, probed as
    ``tls://`` and ``https://`` (verify_tls off): both report about two days."""
    cert = self_signed(timedelta(days=2))
    context = cert.server_context(tmp_path)
    async with listening(http_ok, ssl_context=context) as port:
        ids = {}
        for scheme in ("tls", "https"):
            body = {
                "name": f"cert-{scheme}",
                "address": f"{scheme}://127.0.0.1:{port}" + ("/" if scheme == "https" else ""),
                "verify_tls": False,
                "timeout_seconds": 5,
            }
            r = await web.client.post("/devices", json=body)
            assert r.status_code == 201, r.text
            ids[scheme] = r.json()["id"]
        r = await web.client.post(
            "/jobs/probe", params={"wait": "true"}, json={"device_ids": list(ids.values())}
        )
        assert r.status_code == 200 and r.json()["complete"] is True, r.text
    names, samples = await scrape(web.client)
    assert "fleetprobe_certificate_expiry_seconds" in names
    now = datetime.now(UTC)
    expected = (cert.not_after - now).total_seconds()
    for scheme, device_id in ids.items():
        seconds = samples[
            key(
                "fleetprobe_certificate_expiry_seconds",
                device_id=str(device_id),
                name=f"cert-{scheme}",
            )
        ]
        assert expected - 600 < seconds <= expected + 1, (scheme, seconds, expected)


async def test_websocket_clients_are_the_clients_connected(web: WebApp) -> None:
    _, samples = await scrape(web.client)
    assert samples[key("fleetprobe_websocket_clients")] == 0
    async with web.websocket(), web.websocket("types=check.created"):
        _, samples = await scrape(web.client)
        assert samples[key("fleetprobe_websocket_clients")] == 2

    async def gone() -> bool:
        return (await scrape(web.client))[1][key("fleetprobe_websocket_clients")] == 0

    await wait_for(gone, what="the closed clients to leave the hub")


async def test_metrics_need_the_token_when_api_token_is_set(
    settings: Settings, engine: AsyncEngine
) -> None:
    locked = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with served(locked, engine) as web, httpx.AsyncClient(base_url=web.url) as anonymous:
        r = await anonymous.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = await anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        names, _ = await scrape(web.client)  # carries the token
        assert "fleetprobe_probes" in names


async def test_metrics_public_lets_a_scraper_in_without_the_token_and_nothing_else(
    settings: Settings, engine: AsyncEngine
) -> None:
    public = settings.model_copy(update={"api_token": SecretStr(TOKEN), "metrics_public": True})
    async with served(public, engine) as web, httpx.AsyncClient(base_url=web.url) as anonymous:
        names, _ = await scrape(anonymous)
        assert "fleetprobe_devices" in names
        assert (await anonymous.get("/devices")).status_code == 401


async def test_metrics_are_not_an_operation_of_the_spec(web: WebApp) -> None:
    spec = (await web.client.get("/openapi.json")).json()
    assert "/metrics" not in spec["paths"]


# --- the families, pure ---------------------------------------------------------------

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def test_fleet_families_count_states_and_give_seconds() -> None:
    devices = [
        FleetDevice(1, "a", "up", 120.0, NOW + timedelta(days=2)),
        FleetDevice(2, "b", "down", None, NOW - timedelta(hours=1)),
        FleetDevice(3, "c", "paused", 5.0, None),
    ]
    text = "".join(
        f"{s.name}{{{','.join(f'{k}={v!r}' for k, v in sorted(s.labels.items()))}}} {s.value}\n"
        for f in fleet_families(devices, NOW)
        for s in f.samples
    )
    _, samples = parse(text.replace("'", '"'))
    assert samples[key("fleetprobe_devices", state="up")] == 1
    assert samples[key("fleetprobe_devices", state="degraded")] == 0
    assert samples[key("fleetprobe_devices", state="paused")] == 1
    assert samples[key("fleetprobe_device_latency_seconds", device_id="1", name="a")] == 0.12
    assert key("fleetprobe_device_latency_seconds", device_id="2", name="b") not in samples
    assert (
        samples[key("fleetprobe_certificate_expiry_seconds", device_id="1", name="a")] == 2 * 86400
    )
    assert samples[key("fleetprobe_certificate_expiry_seconds", device_id="2", name="b")] == -3600
    assert key("fleetprobe_certificate_expiry_seconds", device_id="3", name="c") not in samples


@pytest.mark.parametrize(
    ("info", "present"),
    [
        (QueueInfo(pending=4, ack_pending=2, redelivered=1), {"up": 1.0, "pending": 4.0}),
        (None, {"up": 0.0}),
    ],
)
def test_queue_families_say_whether_the_consumer_answered(
    info: QueueInfo | None, present: dict[str, float]
) -> None:
    values = {f.name: f.samples[0].value for f in queue_families(info)}
    assert values["fleetprobe_queue_up"] == present["up"]
    if info is None:
        assert set(values) == {"fleetprobe_queue_up"}
    else:
        assert values["fleetprobe_queue_pending"] == present["pending"]
        assert values["fleetprobe_queue_ack_pending"] == 2
        assert values["fleetprobe_queue_redelivered_total"] == 1
