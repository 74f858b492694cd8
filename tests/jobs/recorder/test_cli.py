"""`python -m jobs.recorder`: one command from the shell, the reply as JSON on stdout."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from tests.conftest import isolated_env, subprocess_env
from tests.processes import ROOT
from tests.recorder_helpers import running_simulator


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jobs.recorder", *args],
        cwd=ROOT,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_start_status_stop_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    env = isolated_env(settings.nats_url, tmp_path, NATS_SUBJECT=settings.nats_subject)
    async with running_simulator(settings):
        started = await cli(env, "start", "--task-id", "cam1", "--segment-time", "60")
        assert started.returncode == 0, started.stderr
        reply = json.loads(started.stdout)
        assert reply["task_id"] == "cam1" and reply["app_status"] == "started"
        assert reply["payload"]["segment_time"] == 60.0

        again = await cli(env, "start", "--task-id", "cam1")
        assert again.returncode == 1  # a valid reply that says "error": already recording
        assert json.loads(again.stdout)["msg_status"] == "error"

        status = json.loads((await cli(env, "status", "--task-id", "cam1")).stdout)
        assert status["app_status"] == "started"
        stopped = await cli(env, "stop", "--task-id", "cam1")
        assert stopped.returncode == 0 and json.loads(stopped.stdout)["app_status"] == "stopped"

        demo = await cli(env, "demo", "--task-id", "cam2")
        assert demo.returncode == 0, demo.stderr
        steps = [json.loads(line)["app_status"] for line in demo.stdout.splitlines()]
        assert steps == ["started", "started", "stopped"]


async def test_no_recorder_is_exit_3_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    env = isolated_env(settings.nats_url, tmp_path, NATS_SUBJECT="nobody.listens.here")
    result = await cli(env, "status")
    assert result.returncode == 3 and result.stdout == ""
    assert "no reply" in result.stderr


async def test_bad_arguments_are_exit_2(settings: Settings, tmp_path: Path) -> None:
    env = isolated_env(settings.nats_url, tmp_path)
    result = await cli(env, "start", "--vid-byterate", "-5")
    assert result.returncode == 2 and "vid_byterate" in result.stderr
