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
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.logs import setup_logging
from core.natsconn import connect
from core.natsserver import EmbeddedNats, host_port, is_reachable, start_nats_server
from core.settings import Settings
from jobs.broker import make_broker
from jobs.runtime import instance_name
from jobs.scheduling import ProbeScheduler
from jobs.tasks import expected_tasks, register_tasks
from storage.db import init_db, make_engine

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
        log.info("using NATS at %s", settings.nats_url)
        return None
    if not allow or not settings.embedded_nats:
        log.warning(
            "nothing answers at %s; waiting for it (embedded server disabled)", settings.nats_url
        )
        return None
    host, port = host_port(settings.nats_url)
    data = Path(settings.nats_data_dir)
    return start_nats_server(host, port, data / "nats", log_file=data / "nats-server.log")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    embedded = maybe_start_nats(settings, allow=not args.no_embedded_nats)
    cleanup: list[tuple[str, object]] = []
    try:
        engine = make_engine(settings)
        await init_db(engine)
        cleanup.append(("database", engine.dispose))

        broker = make_broker(settings, name=instance_name("scheduler"))
        register_tasks(broker)
        missing = expected_tasks() - set(broker.get_all_tasks())
        if missing:
            log.error("tasks not registered: %s", sorted(missing))
            return 2
        broker.is_worker_process = not args.no_worker
        await broker.startup()
        cleanup.append(("broker", broker.shutdown))
        log.info(
            "queue ready stream=%s subject=%s durable=%s ack_wait_s=%.0f",
            settings.jobs_stream,
            settings.jobs_subject,
            settings.jobs_durable,
            settings.ack_wait_seconds,
        )

        nc = await connect(settings, instance_name("scheduler-events"))
        cleanup.append(("nats", nc.drain))

        scheduler: ProbeScheduler | None = None
        if not args.no_scheduler:
            scheduler = ProbeScheduler(settings, broker, engine, nc)
            await scheduler.start()
            cleanup.append(("scheduler", scheduler.stop))

        if not args.no_worker:
            from taskiq.api import run_receiver_task

            worker_task = asyncio.create_task(
                run_receiver_task(
                    broker,
                    max_async_tasks=settings.worker_concurrency,
                    run_startup=False,
                ),
                name="in-process-worker",
            )
            cleanup.append(("worker", _canceller(worker_task)))
            log.info("in-process worker started concurrency=%d", settings.worker_concurrency)

        if not args.no_web:
            server_task = await _start_web(args, settings, engine, broker, nc, scheduler)
            cleanup.append(("web", server_task))

        log.info("fleetprobe running; Ctrl-C to stop")
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        for name, closer in reversed(cleanup):
            try:
                async with asyncio.timeout(10):
                    await _close(closer)
            except Exception as exc:
                log.warning("stop failed part=%s error=%r", name, exc)
            else:
                log.info("stopped %s", name)
        if embedded is not None:
            embedded.stop()


def _canceller(task: asyncio.Task[None]) -> object:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel


async def _close(closer: object) -> None:
    if isinstance(closer, asyncio.Task):
        await closer
        return
    result = closer()  # type: ignore[operator]
    if asyncio.iscoroutine(result):
        await result


async def _start_web(
    args: argparse.Namespace,
    settings: Settings,
    engine: AsyncEngine,
    broker: AsyncBroker,
    nc: Client,
    scheduler: ProbeScheduler | None,
) -> object:
    from jobs.events import EventPublisher
    from web.app import create_app
    from web.services import Services

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
    config = uvicorn.Config(
        create_app(services),
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        ws="websockets-sansio",
    )
    server = _HostedServer(config)
    task = asyncio.create_task(server.serve(), name="web")
    # uvicorn offers no "started" event to await; poll its flag briefly.
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
        raise RuntimeError(f"web server did not start on {host}:{port}")
    log.info("web listening url=http://%s:%d swagger=/swagger ws=/ws/items", host, port)

    async def stop_web() -> None:
        server.should_exit = True
        await task

    return stop_web


class _HostedServer(uvicorn.Server):
    """uvicorn without its own signal capture: this process owns SIGINT/SIGTERM and
    stops the server in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        return asyncio.run(run(args, settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
