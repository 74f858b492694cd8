"""``python -m jobs.recorder.simulator`` as a real process: it answers on the configured
subject, logs each command, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from jobs.recorder import NoResponderError, RecorderClient, RecorderService
from tests.conftest import isolated_env
from tests.helpers import wait_for
from tests.processes import Proc


async def wait_until_answering(service: RecorderService, proc: Proc) -> None:
    async def answers() -> bool:
        assert proc.popen.poll() is None, proc.output()
        try:
            await service.status(task_id="probe")
        except NoResponderError:
            return False
        return True

    await wait_for(answers, timeout=20, what="the simulator to answer")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_the_simulator_runs_on_its_own_and_stops_cleanly_on_a_signal(
    settings: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    env = isolated_env(settings.nats_url, tmp_path)
    args = [
        sys.executable,
        "-m",
        "jobs.recorder.simulator",
        "--nats-url",
        settings.nats_url,
        "--subject",
        settings.nats_subject,
        "--root",
        "/srv/rec",
    ]
    proc = Proc(args, env, tmp_path / "simulator.log")
    try:
        async with RecorderClient(settings) as client:
            service = RecorderService(client)
            await wait_until_answering(service, proc)
            started = await service.start(task_id="cam1")
            assert started.payload.file_path == "/srv/rec/rec001.wav"
            assert (await service.stop(task_id="cam1")).app_status == "stopped"
    finally:
        code = proc.stop(sig)
    assert code == 0, proc.output()
    out = proc.output()
    assert f"recorder simulator listening subject={settings.nats_subject}" in out
    assert "task_id=cam1 cmd=start msg_status=success app_status=started" in out
    assert "recorder simulator stopped handled=3 tasks=2" in out


async def test_the_simulator_reads_nats_url_and_subject_from_the_environment(
    settings: Settings, tmp_path: Path
) -> None:
    env = isolated_env(settings.nats_url, tmp_path, NATS_SUBJECT=settings.nats_subject)
    proc = Proc([sys.executable, "-m", "jobs.recorder.simulator"], env, tmp_path / "sim.log")
    try:
        async with RecorderClient(settings) as client:
            await wait_until_answering(RecorderService(client), proc)
    finally:
        assert proc.stop() == 0, proc.output()
