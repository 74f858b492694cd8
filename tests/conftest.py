"""Shared fixtures: a real nats-server from the wheel, a real SQLite file, local HTTP targets.

Every test gets its own stream, subject, durable and events subject, so tests never see
each other's messages on the shared server.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.natsserver import EmbeddedNats, free_port, start_nats_server
from core.settings import Settings
from storage.db import init_db, make_engine
from tests.targets import ThreadedServer
from tests.targets import app as target_app
from tests.webapp import WebApp, served


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a non-interactive shell (``.ci/run &``, a CI
    runner) inherits SIGINT ignored (POSIX), and so would every process a test starts:
    Python then installs no KeyboardInterrupt, and the tests that press Ctrl-C on a child
    (``tests/system/test_stop_while_waiting.py``: the recorder CLI) would be testing a
    background job. They get what a terminal gives instead."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """nats-server with JetStream on a free port; fails loudly if the binary is missing."""
    store = tmp_path_factory.mktemp("nats-store")
    server = start_nats_server("127.0.0.1", free_port(), store, log_file=store / "nats.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_target() -> Iterator[str]:
    server = ThreadedServer(target_app, free_port()).start()
    yield server.url
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"


def isolated_env(nats_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment variables naming a private queue, subject and database for one test."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fleetprobe.db'}",
        "JOBS_STREAM": f"T_{tag}",
        "JOBS_SUBJECT": f"t.{tag}.jobs",
        "JOBS_DURABLE": f"w-{tag}",
        "EVENTS_SUBJECT": f"t.{tag}.items.updates",
        "NATS_SUBJECT": f"t.{tag}.rec.control",
        "METRICS_SUBJECT": f"t.{tag}.metrics",
        "NATS_DATA_DIR": str(tmp_path / "data"),
        "RESULT_FLUSH_MS": "2",
        "EMBEDDED_NATS": "false",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(**isolated_env(nats_server.url, tmp_path))  # type: ignore[arg-type]


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(settings)
    await init_db(eng)
    yield eng
    await eng.dispose()


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    """The current environment plus ``env``, with the repo importable.  A
    ``python scheduler.py`` runs no worker processes unless ``env`` asks (``WORKERS``):
    the tests of what one process does stay about one process."""
    full = dict(os.environ)
    full["WORKERS"] = "0"
    full.update(env)
    root = str(Path(__file__).resolve().parent.parent)
    full["PYTHONPATH"] = root + os.pathsep + full.get("PYTHONPATH", "")
    return full


@pytest.fixture
async def web(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WebApp]:
    """The web app with no worker: a job that got through stays in the stream, and
    invented device addresses are never probed.  Modules that need a worker override it."""
    async with served(settings, engine) as app:
        yield app
