"""``python scheduler.py``: the whole of fleetprobe on one machine.

Starts (each part can be turned off): an embedded nats-server when nothing answers at
NATS_URL (supervised: reaped and restarted if it dies), the database (brought to the
schema's head), the APScheduler probe scheduler, an in-process taskiq worker, the web
app and ``--workers N`` (``WORKERS``) ``taskiq worker worker:broker`` processes beside
them (supervised: restarted with backoff if one dies).  The web port is bound first, so
a port in use stops everything before it starts.  SIGINT/SIGTERM stop everything in
reverse order, the worker processes first, in every state, connecting included.
``python scheduler.py db upgrade|current`` manages the schema only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core import garbage_collector
from core.children import ChildSupervisor
from core.interrupt import unless_stopped
from core.logs import setup_logging
from core.loop import loop_name
from core.loop import run as run_on_loop
from core.natsconn import close_quietly, connect
from core.natssupervisor import start_supervised
from core.parts import Parts, Refused, refusals
from core.settings import MAX_WORKERS, Settings, settings_error, shared_feed_note
from jobs.alerts.enqueue import change_listener
from jobs.alerts.sweep import AlertSweeper
from jobs.events import EventPublisher
from jobs.probe.health import StateListener
from jobs.probe.scheduler import ProbeScheduler
from jobs.queue.broker import FleetprobeBroker, make_broker
from jobs.queue.errors import BrokerConfigError
from jobs.queue.inprocess import InProcessWorker
from jobs.queue.receiver import RECEIVER
from jobs.recorder.client import RecorderClient
from jobs.recorder.scheduler import RecorderScheduler
from jobs.scheduling.lease import owned_lease
from jobs.worker import instance_name, recorder_check, register_tasks
from storage import migrate
from storage.db import init_db, make_engine
from storage.installation import installation_id
from storage.migrate import SchemaError
from web.app import create_app
from web.auth import warn_if_exposed
from web.server import WebStartError, bind, serve
from web.services import Services

log = logging.getLogger("fleetprobe")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scheduler.py",
        description="Run fleetprobe: scheduler, in-process worker, web app and, when no "
        "NATS answers at NATS_URL, an embedded nats-server. Settings come from the "
        "environment (see README); flags turn parts off. `scheduler.py db upgrade|current` "
        "manages the database schema.",
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
    p.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="run N `taskiq worker worker:broker` processes beside this one (default "
        "WORKERS, auto: the cores less one; 0 with --no-worker unless given)",
    )
    p.add_argument("--host", help="web bind address (default WEB_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="web port (default WEB_PORT, 8002)")
    return p.parse_args(argv)


def _worker_count(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"give a number from 0 to {MAX_WORKERS}, not {text!r}")
    return int(text)


async def start_queue(
    args: argparse.Namespace,
    settings: Settings,
    parts: Parts,
    engine: AsyncEngine,
    on_fatal: Callable[[Any], None],
) -> FleetprobeBroker:
    broker = make_broker(settings, name=instance_name("scheduler"))
    broker.on_fatal = on_fatal
    broker.engine = engine  # its installation is read from it (jobs.queue.ownership)
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
    settings: Settings,
    parts: Parts,
    broker: FleetprobeBroker,
    engine: AsyncEngine,
    nc: Client,
    installation: str,
    on_change: StateListener,
) -> ProbeScheduler:
    # In a bucket checked to be this installation's (jobs.queue.ownership).
    lease = await owned_lease(nc.jetstream(), settings, installation, instance_name("scheduler"))
    # The leader's sweep (stale -> unknown) queues notifications of what it changes.
    scheduler = ProbeScheduler(
        settings,
        broker,
        engine,
        nc,
        lease=lease,
        state_listeners=[on_change],
        installation=installation,
    )
    await scheduler.start()
    parts.add("scheduler", scheduler.stop)
    # Recorder schedules: jobs of their own, kicked only while the probe scheduler leads.
    recorder = RecorderScheduler(
        settings,
        broker,
        engine,
        nc,
        is_leader=lambda: scheduler.is_leader,
        installation=installation,
    )
    await recorder.start()
    parts.add("recorder scheduler", recorder.stop)
    # Reminders and maintenance.started/ended: the leader's, like the kicks.
    sweeper = AlertSweeper(
        settings,
        broker,
        engine,
        EventPublisher(nc, settings.events_subject, instance_name("alerts"), installation),
        is_leader=lambda: scheduler.is_leader,
    )
    sweeper.start()
    parts.add("alert sweeper", sweeper.stop)
    return scheduler


# A worker process's broker shutdown (the hand-back of what it fetched, the last flush of
# results, closing NATS) after its running tasks had SHUTDOWN_GRACE_SECONDS.
WORKER_SHUTDOWN_SECONDS = 3.0


def worker_count(args: argparse.Namespace, settings: Settings) -> int:
    """How many worker processes: ``--workers``, else none with ``--no-worker`` (workers
    run elsewhere), else ``WORKERS``."""
    if args.workers is not None:
        return int(args.workers)
    return 0 if args.no_worker else settings.worker_processes


def worker_argv(settings: Settings) -> list[str]:
    """One ``taskiq worker worker:broker`` with one worker child, as many tasks at once as
    the in-process worker, stopping within the grace time plus its broker shutdown."""
    return [
        sys.executable, "-m", "taskiq", "worker", "worker:broker",
        "--app-dir", str(Path(__file__).resolve().parent),
        "--workers", "1",
        "--receiver", RECEIVER,
        "--max-async-tasks", str(settings.worker_concurrency),
        "--wait-tasks-timeout", f"{settings.shutdown_grace_seconds:g}",
        "--shutdown-timeout", f"{WORKER_SHUTDOWN_SECONDS:g}",
        # A child dying again and again ends its taskiq parent: then ours backs off.
        "--max-fails", "3",
    ]  # fmt: skip


def start_worker_processes(settings: Settings, parts: Parts, count: int) -> None:
    # taskiq's parent polls its children once a second: allow it that on top.
    stop_timeout = settings.shutdown_grace_seconds + WORKER_SHUTDOWN_SECONDS + 2.0
    children = ChildSupervisor("worker process", worker_argv(settings), count, stop_timeout)
    children.start()
    parts.add("worker processes", children.stop, timeout=stop_timeout + 7.0)


def start_worker(settings: Settings, parts: Parts, broker: FleetprobeBroker) -> None:
    worker = InProcessWorker(broker, settings.worker_concurrency, settings.shutdown_grace_seconds)
    worker.start()
    parts.add("worker", worker.stop)


async def start_web(
    args: argparse.Namespace,
    settings: Settings,
    sock: socket.socket,
    engine: AsyncEngine,
    broker: AsyncBroker,
    nc: Client,
    installation: str,
    scheduler: ProbeScheduler | None,
    on_change: StateListener,
) -> Callable[[], Awaitable[None]]:
    services = Services(
        settings=settings,
        engine=engine,
        broker=broker,
        nc=nc,
        events=EventPublisher(nc, settings.events_subject, instance_name("web"), installation),
        installation_id=installation,
        scheduler=scheduler,
        # pause and resume through the API are state changes too
        state_listeners=[on_change],
        # POST /devices/validate of a recorder:// device (over the borrowed connection)
        recorder_check=recorder_check(
            RecorderClient(settings, name=instance_name("web-recorder"), connection=nc)
        ),
    )
    host, port = web_address(args, settings)
    return await serve(create_app(services, bind_host=host), settings, sock, host, port)


async def start_parts(
    args: argparse.Namespace,
    settings: Settings,
    parts: Parts,
    sock: socket.socket | None,
    fatal: Callable[[Any], None],
) -> None:
    """Start every part in order (each added to ``parts`` once up); raises
    :class:`Refused` when one refuses to start."""
    engine = make_engine(settings)
    parts.add("database", engine.dispose)
    with refusals(BrokerConfigError, SchemaError):
        await init_db(engine)  # brings the schema to head (storage.migrate)
        # Who we are: on the queue (jobs.queue.ownership) and on every event (jobs.events).
        installation = await installation_id(engine)
        broker = await start_queue(args, settings, parts, engine, fatal)
    nc = await connect(settings, instance_name("scheduler-events"))
    parts.add("nats", lambda: close_quietly(nc))
    # A state change stored by the leader's sweep or through the API queues its
    # notifications (the in-process worker's runtime adds its own: jobs.worker).
    on_change = change_listener(engine, broker)
    scheduler = None
    if not args.no_scheduler:
        with refusals(BrokerConfigError):
            scheduler = await start_scheduler(
                settings, parts, broker, engine, nc, installation, on_change
            )
    if not args.no_worker:
        start_worker(settings, parts, broker)
    if sock is not None:
        with refusals(WebStartError):
            parts.add(
                "web",
                await start_web(
                    args, settings, sock, engine, broker, nc, installation, scheduler, on_change
                ),
            )
    # Last, so the first to stop: they hand back what they fetched while the rest still runs.
    workers = worker_count(args, settings)
    if workers:
        start_worker_processes(settings, parts, workers)


def web_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    host = args.host or settings.web_host
    return host, args.port if args.port is not None else settings.web_port


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
        sock = None
        if not args.no_web:  # the web port first: a port in use stops everything here
            host, port = web_address(args, settings)
            warn_if_exposed(host, settings.api_token)
            if shared := shared_feed_note(settings):
                log.info("%s", shared)
            try:
                sock = bind(host, port)
            except WebStartError as exc:
                log.error("refusing to start: %s", exc)
                return 3
            stack.callback(sock.close)
        supervisor = start_supervised(settings, allow=not args.no_embedded_nats)
        if supervisor is not None:  # the last to stop
            stack.push_async_callback(supervisor.stop)
        parts = Parts(stack, timeout=settings.shutdown_grace_seconds + 5)
        try:
            # Every state stops on a signal, connecting included (NATS away: connect waits).
            started, _ = await unless_stopped(start_parts(args, settings, parts, sock, fatal), stop)
        except Refused:
            return 3
        if not started:
            log.info("stopped while starting")
            return exit_code
        garbage_collector.freeze_start_up()
        log.info(
            "fleetprobe running loop=%s worker=%s worker_processes=%d; Ctrl-C to stop",
            loop_name(settings.event_loop),
            "off" if args.no_worker else "in-process",
            worker_count(args, settings),
        )
        await stop.wait()
        log.info("stopping")
        return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["db"]:  # `python scheduler.py db upgrade|current`
        return migrate.main(argv[1:])
    args = parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings: {settings_error(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    garbage_collector.tune(settings.gc_thresholds)
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
