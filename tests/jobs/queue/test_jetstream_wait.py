"""A worker or scheduler started while JetStream does not answer yet (a cluster electing the
stream's leader, a server started without ``-js``) waits with a warning and starts when it
answers, instead of dying with a traceback (taskiq restarted the worker, and the operator
saw ``nats.errors.TimeoutError`` from ``add_stream``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError

from core.natsserver import find_nats_server, free_port, start_nats_server
from core.settings import Settings
from jobs.queue.broker import jetstream_silence, make_broker
from storage.db import init_db, make_engine
from tests.conftest import isolated_env
from tests.helpers import wait_for


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (NatsTimeoutError(), "no-answer"),
        (ServiceUnavailableError(), "service-unavailable"),
        (ServiceUnavailableError(description="None"), "service-unavailable"),
        (
            ServiceUnavailableError(description="JetStream system temporarily unavailable"),
            "service-unavailable:JetStream system temporarily unavailable",
        ),
    ],
)
def test_what_jetstream_not_answering_is_called(error: Exception, said: str) -> None:
    assert jetstream_silence(error) == said


@contextlib.contextmanager
def without_jetstream(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A nats-server without ``-js``: nobody answers ``$JS.API`` (nats-py raises a 503)."""
    plain = subprocess.Popen(
        [find_nats_server(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield plain
    finally:
        if plain.poll() is None:
            plain.kill()
            plain.wait()


async def settings_with_a_database(port: int, tmp_path: Path) -> Settings:
    settings = Settings(**isolated_env(f"nats://127.0.0.1:{port}", tmp_path))  # type: ignore[arg-type]
    engine = make_engine(settings)
    await init_db(engine)
    await engine.dispose()
    return settings


def jetstream_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # (Lines of the connection's own wait, until the server listens, are not these.)
    return [r for r in caplog.records if r.getMessage().startswith("jetstream stream=")]


async def warned(caplog: pytest.LogCaptureFixture) -> None:
    async def said() -> bool:
        return any("unavailable" in r.getMessage() for r in jetstream_lines(caplog))

    await wait_for(said, timeout=30, what="the JetStream warning")


@dataclass
class Waiting:
    settings: Settings
    port: int
    plain: subprocess.Popen[bytes]  # the server without JetStream
    starting: asyncio.Task[None]  # the broker's start-up


@contextlib.asynccontextmanager
async def waiting_for_jetstream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Waiting]:
    """A broker starting against a server without JetStream, once it said it waits; shut
    down at the end."""
    port = free_port()
    settings = await settings_with_a_database(port, tmp_path)
    broker = make_broker(settings, name="test")
    broker.jetstream_retry_seconds = 0.2
    try:
        with without_jetstream(port) as plain, caplog.at_level(logging.INFO):
            starting = asyncio.create_task(broker.startup())
            await warned(caplog)
            yield Waiting(settings, port, plain, starting)
    finally:
        await broker.shutdown()


async def test_start_up_waits_for_jetstream_then_creates_the_stream_and_consumer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = None
    try:
        async with waiting_for_jetstream(tmp_path, caplog) as waiting:
            settings = waiting.settings
            assert not waiting.starting.done()
            warnings = jetstream_lines(caplog)
            assert warnings[0].levelno == logging.WARNING
            said = warnings[0].getMessage()
            assert said.startswith(f"jetstream stream={settings.jobs_stream} unavailable")
            assert "service-unavailable" in said and "nats-server -js" in said

            # JetStream comes: the same address, now with -js.
            waiting.plain.terminate()
            waiting.plain.wait(timeout=10)
            server = start_nats_server("127.0.0.1", waiting.port, tmp_path / "js")
            await asyncio.wait_for(waiting.starting, timeout=60)
        said_last = jetstream_lines(caplog)[-1]
        assert said_last.getMessage().startswith(f"jetstream stream={settings.jobs_stream} back")
        assert said_last.levelno == logging.INFO
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(settings.jobs_stream)
            assert info.config.subjects == [settings.jobs_subject]
            consumer = await js.consumer_info(settings.jobs_stream, settings.jobs_durable)
            assert consumer.config.durable_name == settings.jobs_durable
        finally:
            await nc.close()
    finally:
        if server is not None:
            server.stop()


async def test_start_up_waiting_for_jetstream_can_be_cancelled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop while waiting (the scheduler's Ctrl-C cancels its start) ends it at once."""
    async with waiting_for_jetstream(tmp_path, caplog) as waiting:
        waiting.starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting.starting, timeout=5)
