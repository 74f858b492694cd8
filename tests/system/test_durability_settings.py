"""SQLITE_SYNCHRONOUS reaches SQLite's PRAGMA; NATS_SYNC_INTERVAL reaches the embedded
nats-server's JetStream ``sync_interval`` (read back from the server's /varz)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.natsserver import free_port, start_nats_server
from core.natssupervisor import start_embedded
from core.settings import Settings
from storage.db import make_engine


@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2), ("FULL", 2)])
async def test_sqlite_synchronous_reaches_the_pragma(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    settings = Settings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", SQLITE_SYNCHRONOUS=setting
    )
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == pragma
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    finally:
        await engine.dispose()


def test_sqlite_synchronous_defaults_to_full() -> None:
    assert Settings().sqlite_synchronous == "full"


def jetstream_config(monitor_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/varz", timeout=5) as resp:
        config: dict[str, Any] = json.loads(resp.read())["jetstream"]["config"]
    return config


@pytest.mark.parametrize(
    ("sync_interval", "always", "interval_ns"),
    [("always", True, None), ("10s", None, 10_000_000_000), ("default", None, 120_000_000_000)],
)
def test_the_sync_interval_reaches_the_nats_server(
    tmp_path: Path, sync_interval: str, always: bool | None, interval_ns: int | None
) -> None:
    monitor = free_port()
    server = start_nats_server(
        "127.0.0.1",
        free_port(),
        tmp_path / "nats",
        sync_interval=sync_interval,
        extra_args=["-m", str(monitor)],
    )
    try:
        config = jetstream_config(monitor)
    finally:
        server.stop()
    assert config.get("sync_always") is always
    if interval_ns is not None:
        assert config["sync_interval"] == interval_ns
    assert config["store_dir"].startswith(str(tmp_path / "nats"))


@pytest.mark.parametrize("value", ["sometimes", "10", "-1s", "1d"])
def test_a_bad_sync_interval_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="NATS_SYNC_INTERVAL"):
        Settings(NATS_SYNC_INTERVAL=value)


def test_scheduler_embedded_server_is_started_with_the_setting(tmp_path: Path) -> None:
    settings = Settings(
        NATS_URL=f"nats://127.0.0.1:{free_port()}",
        NATS_DATA_DIR=str(tmp_path / "data"),
        NATS_SYNC_INTERVAL="always",
    )
    server = start_embedded(settings, allow=True)
    assert server is not None
    try:
        conf = Path(server.cmd[server.cmd.index("-c") + 1])
        assert "sync_interval: always" in conf.read_text()
        assert server.process.poll() is None
    finally:
        server.stop()
