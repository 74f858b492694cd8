"""schemathesis against the ``/recorder`` part of ``/openapi.json``, with a worker and the
reference recorder running (the web suite's run excludes these paths: they need both)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.conftest import subprocess_env
from tests.helpers import running_worker
from tests.recorder_helpers import running_simulator
from tests.webapp import serve_app

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@pytest.mark.slow
async def test_schemathesis_finds_nothing_wrong_with_the_recorder_endpoints(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parent.parent
    env = subprocess_env({"NO_COLOR": "1"})
    env["PYTHONPATH"] = str(root) + ":" + env.get("PYTHONPATH", "")
    async with (
        running_simulator(settings),
        running_worker(settings) as broker,
        serve_app(settings, engine, broker) as web,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "run", f"{web.url}/openapi.json",
            "--include-path-regex", "^/recorder",
            "--checks", CHECKS,
            "--max-examples", "30",
            "--workers", "1",
            "--seed", "20261123",
            "--phases", "examples,coverage,fuzzing",
            "--request-timeout", "10",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(300):
            out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report
    assert "9 selected" in report and "No issues found" in report, report
