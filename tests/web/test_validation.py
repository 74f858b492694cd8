"""``POST /devices/validate``: one check run now in the web process, with every verdict;
nothing stored, nothing announced, nothing queued."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from tests.helpers import collect_events
from tests.jobs.probe.kinds.servers import listening, self_signed
from tests.web.test_bad_input import database_dump, queued_jobs
from tests.webapp import WebApp


async def test_validate_answers_the_verdicts_and_stores_nothing(
    web: WebApp, settings: Settings, http_target: str
) -> None:
    before, jobs_before = database_dump(settings), await queued_jobs(settings)
    async with collect_events(settings) as events:
        r = await web.client.post(
            "/devices/validate",
            json={
                "name": "try",
                "address": f"{http_target}/json?status=DOWN",
                "conditions": ["[STATUS] == 200", "[BODY].status == UP"],
                "degraded_when": ["[RESPONSE_TIME] > 60000"],
            },
        )
        await web.services.nc.flush()
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["outcome"], result["status_up"], result["status_code"]) == ("down", False, 200)
    assert result["verdicts"] == [
        {"condition": "[STATUS] == 200", "success": True, "actual": "200"},
        {"condition": "[BODY].status == UP", "success": False, "actual": "DOWN"},
    ]
    assert result["degraded_verdicts"][0]["success"] is False
    assert result["error_kind"] == "condition" and "[BODY].status == UP" in result["error"]
    assert result["latency_ms"] > 0 and result["certificate_expires_at"] is None
    assert database_dump(settings) == before
    assert await queued_jobs(settings) == jobs_before
    assert events == []


@pytest.mark.parametrize("listens", [True, False])
async def test_validate_runs_a_tcp_check(web: WebApp, listens: bool) -> None:
    async with listening() as port:
        if listens:
            r = await web.client.post(
                "/devices/validate", json={"name": "t", "address": f"tcp://127.0.0.1:{port}"}
            )
    if not listens:
        r = await web.client.post(
            "/devices/validate", json={"name": "t", "address": f"tcp://127.0.0.1:{port}"}
        )
    result = r.json()
    assert result["outcome"] == ("up" if listens else "down")
    assert result["error_kind"] == (None if listens else "refused")
    assert result["verdicts"][0]["condition"] == "[CONNECTED] == true"


async def test_validate_a_tls_device_answers_its_certificates_expiry_and_subject(
    web: WebApp, tmp_path: Path
) -> None:
    cert = self_signed(timedelta(days=2), common_name="mail.fleet.test")
    async with listening(ssl_context=cert.server_context(tmp_path)) as port:
        r = await web.client.post(
            "/devices/validate",
            json={
                "name": "mail",
                "address": f"tls://127.0.0.1:{port}",
                "verify_tls": False,
                "conditions": ["[CERTIFICATE_EXPIRATION] > 72h"],
            },
        )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["certificate_subject"] == "O=fleetprobe tests,CN=mail.fleet.test"
    expires = cert.not_after.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert result["certificate_expires_at"] == expires
    assert (result["outcome"], result["verdicts"][0]["success"]) == ("down", False)


async def test_validate_a_recorder_device_with_no_recorder_running(web: WebApp) -> None:
    r = await web.client.post(
        "/devices/validate", json={"name": "r", "address": "recorder://cam9", "timeout_seconds": 2}
    )
    assert r.status_code == 200
    assert (r.json()["outcome"], r.json()["error_kind"]) == ("down", "no_responder")


async def test_validating_an_edit_sends_the_stored_value_of_a_masked_header(
    web: WebApp, http_target: str
) -> None:
    device = {
        "name": "auth",
        "address": f"{http_target}/echo",
        "headers": {"Authorization": "Bearer s3cret"},
        "conditions": ["[BODY].headers.authorization == Bearer s3cret"],
    }
    stored = (await web.client.post("/devices", json=device)).json()
    edited = device | {"headers": stored["headers"]}  # what the edit form holds: "***"
    assert edited["headers"] == {"Authorization": "***"}
    r = await web.client.post(f"/devices/validate?device_id={stored['id']}", json=edited)
    assert (r.status_code, r.json()["outcome"]) == (200, "up"), r.text
    # Without device_id the "***" is sent as it is, and the condition says so.
    r = await web.client.post("/devices/validate", json=edited)
    assert r.json()["outcome"] == "down"
    assert r.json()["verdicts"][0]["actual"] == "***"
    r = await web.client.post("/devices/validate?device_id=999", json=edited)
    assert r.status_code == 404 and "999" in r.text
    r = await web.client.post("/devices/validate?device_id=0", json=edited)
    assert r.status_code == 422 and "device_id" in r.text
