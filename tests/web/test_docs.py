"""``/openapi.json`` and ``/swagger``, and a schemathesis run against the spec."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.core.result import Ok
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.events import EVENT_TYPES
from tests.conftest import subprocess_env
from tests.helpers import running_worker
from tests.recorder_helpers import running_simulator
from tests.webapp import WebApp, serve_app
from web.app import api_endpoints

SEED_OPERATIONS = {
    ("get", "/devices"),
    ("post", "/devices"),
    ("get", "/devices/{device_id}"),
    ("patch", "/devices/{device_id}"),
    ("delete", "/devices/{device_id}"),
    ("get", "/devices/{device_id}/checks"),
    ("post", "/devices/{device_id}/checks"),
    ("post", "/tasks/run"),
    ("post", "/tasks/run/background"),
    ("post", "/jobs/probe"),
    ("get", "/health"),
}
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,"
    "negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth,"
    "use_after_free,ensure_resource_availability,"
    "refused_requests_change_nothing,every_operation_succeeds_once"
)
FUZZ_TOKEN = "fuzz-token"
# A 502/503/504 is a legitimate answer where the spec documents it (recorder not running,
# no reply in time, queue down): status_code_conformance fails any undocumented status,
# and not_a_server_error any 500 (always a bug) or other 5xx.
FUZZ_CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "502", "503", "504"]
"""


async def test_the_spec_is_valid_openapi_and_describes_every_endpoint(web: WebApp) -> None:
    r = await web.client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    spec = r.json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.validate()  # against the OpenAPI 3.0 meta-schema
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert {(op.method, op.path) for op in operations} >= SEED_OPERATIONS
    components = spec["components"]["schemas"]
    assert {"DeviceCreate", "DeviceUpdate", "DeviceRead", "CheckCreate", "CheckRead"} <= set(
        components
    )
    # generated from the models: bounds and the refusal of unknown fields are in it
    create = components["DeviceCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["name"]["maxLength"] == 200
    # every check kind's scheme, in any case (docs/check-kinds.md)
    assert create["properties"]["address"]["pattern"].startswith("^(?:[hH][tT][tT][pP][sS]?|")
    assert "[rR][eE][cC][oO][rR][dD][eE][rR]" in create["properties"]["address"]["pattern"]
    assert create["properties"]["conditions"]["items"]["maxLength"] == 500
    assert "post" in spec["paths"]["/devices/validate"]
    assert set(create["required"]) == {"name", "address"}
    # this deployment's PROBE_MAX_TIMEOUT_SECONDS, not only the static bound
    assert create["properties"]["timeout_seconds"]["maximum"] == 60
    assert components["DeviceUpdate"]["properties"]["timeout_seconds"]["maximum"] == 60
    assert "ws://" in spec["info"]["description"]


async def test_the_spec_lists_every_event_type_of_the_registry(web: WebApp) -> None:
    description = (await web.client.get("/openapi.json")).json()["info"]["description"]
    listed = re.findall(r"^- `([a-z._]+)`: ", description, flags=re.MULTILINE)
    assert listed == list(EVENT_TYPES)
    assert {"recorder.command", "recorder.schedule.created", "check.created"} <= set(listed)


async def test_swagger_ui_is_served_from_local_assets(web: WebApp) -> None:
    r = await web.client.get("/swagger")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '"/openapi.json"' in r.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/swagger/assets/") for a in assets)
    for asset in assets:
        got = await web.client.get(asset)
        assert got.status_code == 200, asset
        assert len(got.content) > 0
    js = await web.client.get("/swagger/assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content


@pytest.mark.slow
# Its own bound is the 240 s asyncio.timeout below; pytest-timeout's 120 s default cut it
# short on a loaded 2-core box (all phases take 60-200 s there).
@pytest.mark.timeout(300)
async def test_schemathesis_finds_no_server_error_and_no_response_off_the_spec(
    settings: Settings, engine: AsyncEngine, tmp_path: Path, http_target: str
) -> None:
    """Every endpoint, the recorder's included (a worker and the reference recorder run),
    with API_TOKEN set: examples, coverage, fuzzing and stateful sequences (links inferred
    from the schemas and Location headers), a fixed seed and a bounded number of cases."""
    locked = settings.model_copy(update={"api_token": SecretStr(FUZZ_TOKEN)})
    (tmp_path / "schemathesis.toml").write_text(FUZZ_CONFIG)
    env = subprocess_env(
        {
            "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
            "FUZZ_TARGET_URL": http_target,
            "FUZZ_DATABASE": settings.database_url.split("///", 1)[1],
            "NO_COLOR": "1",
        }
    )
    async with (
        running_simulator(locked),
        running_worker(locked) as broker,
        serve_app(locked, engine, broker) as web,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(tmp_path / "schemathesis.toml"),
            "run", f"{web.url}/openapi.json",
            "--checks", CHECKS,
            "--header", f"Authorization: Bearer {FUZZ_TOKEN}",
            "--generation-with-security-parameters", "false",
            "--max-examples", "50",
            "--workers", "1",
            "--seed", "20261123",
            "--generation-database", "none",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--request-timeout", "15",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(240):
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report
    assert f"{len(api_endpoints())} selected" in report, report
    assert "No issues found" in report, report
