"""NATS credentials reach every connection the system opens, the embedded server included."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import nats
import pytest
from nats.errors import NoServersError

from core.natsconn import connect
from core.natsserver import auth_args, free_port, start_nats_server
from core.natsurl import redact
from core.settings import Settings
from tests.conftest import isolated_env
from tests.helpers import running_worker
from tests.processes import running, scheduler_cmd, wait_until


async def assert_refused_without_credentials(port: int) -> None:
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(
            f"nats://127.0.0.1:{port}",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )


def test_credentials_in_the_url_become_server_flags() -> None:
    assert auth_args("nats://app:s%40cret@127.0.0.1:4222") == ["--user", "app", "--pass", "s@cret"]
    assert auth_args("nats://tok@127.0.0.1:4222") == ["--auth", "tok"]
    assert auth_args("nats://127.0.0.1:4222") == []


def test_logged_urls_hide_credentials() -> None:
    assert redact("nats://app:pw@10.0.0.1:4222") == "nats://***@10.0.0.1:4222"
    assert redact("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


async def test_the_queue_and_events_connect_with_url_credentials(tmp_path: Path) -> None:
    port = free_port()
    server = start_nats_server(
        "127.0.0.1", port, tmp_path / "store", extra_args=["--user", "app", "--pass", "pw"]
    )
    try:
        url = f"nats://app:pw@127.0.0.1:{port}"
        settings = Settings(**isolated_env(url, tmp_path))  # type: ignore[arg-type]
        async with running_worker(settings, worker=False) as broker:
            assert broker.client.is_connected
        nc = await connect(settings, "test")
        assert nc.is_connected
        await nc.close()
        await assert_refused_without_credentials(port)
    finally:
        server.stop()


@pytest.mark.slow
async def test_the_embedded_server_requires_the_credentials_of_nats_url(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    env = isolated_env(
        f"nats://app:Zq9-secret@127.0.0.1:{port}",
        tmp_path,
        EMBEDDED_NATS="true",
        WEB_PORT=str(web_port),
    )
    proc = scheduler_cmd(env, tmp_path / "scheduler.log")
    with running(proc):
        wait_until(lambda: "fleetprobe running" in proc.output(), 60, "start-up", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health", timeout=5) as r:
            assert json.loads(r.read())["nats"]["ok"] is True
        await assert_refused_without_credentials(port)
        assert "Zq9-secret" not in proc.output()  # the password is never logged
