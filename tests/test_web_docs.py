"""``/openapi.json`` and ``/swagger``, and a schemathesis run against the spec."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import schemathesis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.conftest import subprocess_env
from tests.helpers import running_worker
from tests.webapp import WebApp, serve_app

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
    "negative_data_rejection,unsupported_method,allow_header_conformance"
)


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    # No worker: schemathesis invents device addresses, and tests only talk to 127.0.0.1.
    async with (
        running_worker(settings, worker=False) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        yield web


async def test_the_spec_is_valid_openapi_and_describes_every_endpoint(web: WebApp) -> None:
    r = await web.client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    spec = r.json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.validate()  # against the OpenAPI 3.0 meta-schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method, op.path) for op in operations} >= SEED_OPERATIONS
    components = spec["components"]["schemas"]
    assert {"DeviceCreate", "DeviceUpdate", "DeviceRead", "CheckCreate", "CheckRead"} <= set(
        components
    )
    # generated from the models: bounds and the refusal of unknown fields are in it
    create = components["DeviceCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["name"]["maxLength"] == 200
    assert create["properties"]["address"]["pattern"].startswith("^[hH][tT][tT][pP]")
    assert set(create["required"]) == {"name", "address"}
    # this deployment's PROBE_MAX_TIMEOUT_SECONDS, not only the static bound
    assert create["properties"]["timeout_seconds"]["maximum"] == 60
    assert components["DeviceUpdate"]["properties"]["timeout_seconds"]["maximum"] == 60
    assert "ws://" in spec["info"]["description"]


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
async def test_schemathesis_finds_no_server_error_and_no_response_off_the_spec(
    web: WebApp, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parent.parent
    env = subprocess_env({"SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "NO_COLOR": "1"})
    env["PYTHONPATH"] = str(root) + ":" + env.get("PYTHONPATH", "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{web.url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", "40",
        "--workers", "1",
        "--seed", "20261123",
        "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "10",
        # The recorder's endpoints need a recorder and have a run of their own.
        "--exclude-path-regex", "^/recorder",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(300):
        out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report
    assert "No issues found" in report or "passed" in report, report
