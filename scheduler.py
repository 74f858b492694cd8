"""``python scheduler.py``: the whole of fleetprobe on one machine.

Starts (each part can be turned off): an embedded nats-server when nothing answers at
NATS_URL, the database, the APScheduler probe scheduler, an in-process taskiq worker and
the web app.  SIGINT/SIGTERM stop everything in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.logs import setup_logging
from core.loop import loop_name
from core.loop import run as run_on_loop
from core.natsconn import connect
from core.natsserver import (
    EmbeddedNats,
    auth_args,
    host_port,
    is_reachable,
    redact,
    start_nats_server,
)
from core.settings import Settings
from jobs.events import EventPublisher
from jobs.probe.scheduler import ProbeScheduler
from jobs.queue.broker import BrokerConfigError, FleetprobeBroker, make_broker
from jobs.queue.inprocess import InProcessWorker
from jobs.recorder.scheduler import RecorderScheduler
from jobs.scheduling.lease import LeaderLease
from jobs.worker import instance_name, register_tasks
from storage.db import init_db, make_engine
from web.app import create_app
from web.auth import warn_if_exposed
from web.server import WebStartError, serve
from web.services import Services

log = logging.getLogger("fleetprobe")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scheduler.py",
        description="Run fleetprobe: scheduler, in-process worker, web app and, when no "
        "NATS answers at NATS_URL, an embedded nats-server. Settings come from the "
        "environment (see README); flags turn parts off.",
    )
    p.add_argument("--no-web", action="store_true", help="do not serve the REST/WebSocket app")
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run tasks in this process (run `taskiq worker worker:broker`)",
    )
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not schedule probes (web app and/or worker only)",
    )
    p.add_argument(
        "--no-embedded-nats",
        action="store_true",
        help="never start nats-server; wait for the one at NATS_URL",
    )
    p.add_argument("--host", help="web bind address (default WEB_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="web port (default WEB_PORT, 8002)")
    return p.parse_args(argv)


def maybe_start_nats(settings: Settings, allow: bool) -> EmbeddedNats | None:
    if is_reachable(settings.nats_url):
        log.info("using NATS at %s", redact(settings.nats_url))
        return None
    if not allow or not settings.embedded_nats:
        log.warning(
            "nothing answers at %s; waiting for it (embedded server disabled)",
            redact(settings.nats_url),
        )
        return None
    host, port = host_port(settings.nats_url)
    data = Path(settings.nats_data_dir)
    return start_nats_server(
        host,
        port,
        data / "nats",
        log_file=data / "nats-server.log",
        extra_args=auth_args(settings.nats_url),
    )


async def _stop(name: str, closer: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Stop one part within ``timeout``; a failure is logged, and the next part still stops."""
    try:
        async with asyncio.timeout(timeout):
            await closer()
    except Exception as exc:
        log.warning("stop failed part=%s error=%r", name, exc)
    else:
        log.info("stopped %s", name)


class Parts:
    """The parts started so far, on an exit stack: stopped in reverse order, each within
    ``timeout``."""

    def __init__(self, stack: contextlib.AsyncExitStack, timeout: float) -> None:
        self._stack = stack
        self._timeout = timeout

    def add(self, name: str, closer: Callable[[], Awaitable[object]]) -> None:
        self._stack.push_async_callback(_stop, name, closer, self._timeout)


async def start_queue(
    args: argparse.Namespace,
    settings: Settings,
    parts: Parts,
    engine: AsyncEngine,
    on_fatal: Callable[[Any], None],
) -> FleetprobeBroker:
    broker = make_broker(settings, name=instance_name("scheduler"))
    broker.on_fatal = on_fatal
    register_tasks(broker, engine=engine)  # the in-process worker shares this engine
    broker.is_worker_process = not args.no_worker
    await broker.startup()
    parts.add("queue", broker.shutdown)
    log.info(
        "queue ready stream=%s subject=%s durable=%s ack_wait_s=%.0f",
        settings.jobs_stream,
        settings.jobs_subject,
        settings.jobs_durable,
        settings.ack_wait_seconds,
    )
    return broker


async def start_scheduler(
    settings: Settings, parts: Parts, broker: FleetprobeBroker, engine: AsyncEngine, nc: Client
) -> ProbeScheduler:
    lease = LeaderLease(
        nc.jetstream(),
        settings.leader_bucket,
        instance_name("scheduler"),
        settings.leader_lease_seconds,
    )
    scheduler = ProbeScheduler(settings, broker, engine, nc, lease=lease)
    await scheduler.start()
    parts.add("scheduler", scheduler.stop)
    # Recorder schedules: jobs of their own, kicked only while the probe scheduler leads.
    recorder = RecorderScheduler(
        settings, broker, engine, nc, is_leader=lambda: scheduler.is_leader
    )
    await recorder.start()
    parts.add("recorder scheduler", recorder.stop)
    return scheduler


def start_worker(settings: Settings, parts: Parts, broker: FleetprobeBroker) -> None:
    worker = InProcessWorker(broker, settings.worker_concurrency, settings.shutdown_grace_seconds)
    worker.start()
    parts.add("worker", worker.stop)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exit_code = 0

    def fatal(error: Exception) -> None:
        nonlocal exit_code
        log.error("stopping: %s", error)
        exit_code = 3
        stop.set()

    async with contextlib.AsyncExitStack() as stack:
        embedded = maybe_start_nats(settings, allow=not args.no_embedded_nats)
        if embedded is not None:
            stack.callback(embedded.stop)  # the last to stop
        parts = Parts(stack, timeout=settings.shutdown_grace_seconds + 5)
        engine = make_engine(settings)
        await init_db(engine)
        parts.add("database", engine.dispose)
        try:
            broker = await start_queue(args, settings, parts, engine, fatal)
        except BrokerConfigError as exc:
            log.error("refusing to start: %s", exc)
            return 3
        nc = await connect(settings, instance_name("scheduler-events"))
        parts.add("nats", nc.drain)
        scheduler = None
        if not args.no_scheduler:
            scheduler = await start_scheduler(settings, parts, broker, engine, nc)
        if not args.no_worker:
            start_worker(settings, parts, broker)
        if not args.no_web:
            try:
                parts.add("web", await start_web(args, settings, engine, broker, nc, scheduler))
            except WebStartError as exc:
                log.error("refusing to start: %s", exc)
                return 3
        log.info("fleetprobe running loop=%s; Ctrl-C to stop", loop_name(settings.event_loop))
        await stop.wait()
        log.info("stopping")
        return exit_code


async def start_web(
    args: argparse.Namespace,
    settings: Settings,
    engine: AsyncEngine,
    broker: AsyncBroker,
    nc: Client,
    scheduler: ProbeScheduler | None,
) -> Callable[[], Awaitable[None]]:
    services = Services(
        settings=settings,
        engine=engine,
        broker=broker,
        nc=nc,
        events=EventPublisher(nc, settings.events_subject, instance_name("web")),
        scheduler=scheduler,
    )
    host = args.host or settings.web_host
    port = args.port if args.port is not None else settings.web_port
    warn_if_exposed(host, settings.api_token)
    return await serve(create_app(services), settings, host, port)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        loop = loop_name(settings.event_loop)
    except RuntimeError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return run_on_loop(run(args, settings), loop)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
