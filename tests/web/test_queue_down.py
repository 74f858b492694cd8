"""A 503 from POST /jobs/probe (a recorder command, /health) while NATS is down says
what did not answer, where, and for how long it was tried (before: ``"the job queue did
not accept the jobs: "``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from core.natsserver import free_port, start_nats_server
from core.settings import Settings
from storage.db import init_db, make_engine
from tests.conftest import isolated_env
from tests.helpers import running_worker, wait_for
from tests.webapp import serve_app


async def test_a_503_names_the_queue_its_servers_and_how_long_it_was_tried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    server = start_nats_server("127.0.0.1", port, tmp_path / "nats")
    settings = Settings(**isolated_env(server.url, tmp_path))  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    try:
        async with (
            running_worker(settings, worker=False) as broker,
            serve_app(settings, engine, broker) as web,
        ):
            r = await web.client.post(
                "/devices", json={"name": "d", "address": "http://127.0.0.1:9/"}
            )
            assert r.status_code == 201
            server.stop()  # NATS goes away; the connections are reconnecting
            caplog.set_level(logging.WARNING, "web")
            r = await web.client.post("/jobs/probe", json={}, timeout=30)
            command = await web.client.post("/recorder/cam1/start", json={}, timeout=30)
            health = await web.client.get("/health", timeout=30)
            # Back, so that the app and the broker close as usual.
            server = start_nats_server("127.0.0.1", port, tmp_path / "nats")

            async def reconnected() -> bool:
                return bool(web.services.nc.is_connected and broker.client.is_connected)

            await wait_for(reconnected, timeout=20, what="the clients back")
    finally:
        server.stop()
        await engine.dispose()
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail.startswith("the job queue did not accept the jobs: NATS JetStream at ")
    assert f"nats://127.0.0.1:{port}" in detail and settings.jobs_stream in detail
    assert settings.jobs_subject in detail
    tried = re.search(r"within (\d+\.\d)s \((\w+)", detail)
    assert tried, detail
    assert float(tried.group(1)) > 0 and tried.group(2).endswith("Error"), detail
    # A recorder command refused by the queue says the same (web.recorder).
    assert command.status_code == 503
    said = command.json()["detail"]
    assert said.startswith("the job queue did not accept the jobs: NATS JetStream at ")
    assert f"nats://127.0.0.1:{port}" in said and re.search(r"within \d+\.\ds \(\w+Error", said)
    # So does /health: what does not answer, and where (before: "not connected").
    assert health.status_code == 503
    nats_error = health.json()["nats"]["error"]
    assert nats_error == f"reconnecting: no NATS server answers at nats://127.0.0.1:{port}"
    # The log lines say the same as the answers (before: error=TimeoutError()).
    kicks = [r.getMessage() for r in caplog.records if "kick failed" in r.getMessage()]
    assert len(kicks) == 2 and all(f"nats://127.0.0.1:{port}" in k for k in kicks), kicks
    assert not any("TimeoutError()" in k for k in kicks), kicks
