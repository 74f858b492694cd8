"""The reference recorder: answers commands on ``NATS_SUBJECT`` as the real one does.

For demos and tests; a real recorder replaces it unchanged.  Run one (not several: each
keeps its own per-task state)::

    python -m jobs.recorder.simulator --nats-url nats://127.0.0.1:4222 --subject rec.control

The behaviour lives in :mod:`jobs.recorder.machine`; this module only moves bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from core.interrupt import unless_stopped
from core.logs import setup_logging
from core.natsconn import connect, subscribe_ready
from core.natsurl import NatsUrlError, parse_servers, redact
from core.settings import Settings, settings_error
from jobs.recorder.machine import DEFAULT_ROOT, TaskState, handle_message
from storage.types import utcnow

log = logging.getLogger(__name__)

# How long the simulator waits for NATS at start before it gives up (exit 1).
CONNECT_SECONDS = 10.0

Clock = Callable[[], datetime]


class RecorderSimulator:
    """Subscribes to ``subject`` on ``nc`` and answers every command."""

    def __init__(
        self, nc: Client, subject: str, *, root: str = DEFAULT_ROOT, clock: Clock = utcnow
    ) -> None:
        self.nc = nc
        self.subject = subject
        self.root = root
        self.clock = clock
        self.states: dict[str, TaskState] = {}
        self.handled = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        # No queue group: a second simulator would answer too, from its own state.
        self._sub = await subscribe_ready(self.nc, self.subject, cb=self._on_msg)
        log.info("recorder simulator listening subject=%s root=%s", self.subject, self.root)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        log.info("recorder simulator stopped handled=%d tasks=%d", self.handled, len(self.states))

    async def _on_msg(self, msg: Msg) -> None:
        # nats-py runs one subscription's callbacks one at a time: no lock needed.
        handled = handle_message(self.states, msg.data, self.clock(), self.root)
        if handled.task_id is not None and handled.state is not None:
            self.states[handled.task_id] = handled.state
        reply = handled.reply
        self.handled += 1
        log.info(
            "recorder simulator task_id=%s cmd=%s msg_status=%s app_status=%s reason=%s",
            handled.task_id,
            _cmd_of(msg.data),
            reply["msg_status"],
            reply["app_status"],
            reply.get("reason"),
        )
        if msg.reply:
            await msg.respond(json.dumps(reply, separators=(",", ":")).encode())


def _cmd_of(data: bytes) -> str | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body.get("cmd") if isinstance(body, dict) else None


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m jobs.recorder.simulator",
        description="Reference recorder: answers start/stop/status on a NATS subject.",
    )
    p.add_argument(
        "--nats-url",
        default=settings.nats_url,
        help=f"NATS server (default NATS_URL, {redact(settings.nats_url)})",
    )
    p.add_argument(
        "--subject",
        default=settings.nats_subject,
        help="subject to answer on (default NATS_SUBJECT, %(default)s)",
    )
    p.add_argument(
        "--root", default=DEFAULT_ROOT, help="folder named in file_path (default %(default)s)"
    )
    p.add_argument(
        "--log-level", default=settings.log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The CLI's URL with the environment's credentials (NATS_CREDS, NATS_TLS_*).
    try:
        parse_servers(args.nats_url, "--nats-url")
    except NatsUrlError as exc:
        log.error("%s", exc)
        return 2
    settings = settings.model_copy(update={"nats_url": args.nats_url})

    async def connecting() -> Client:
        async with asyncio.timeout(CONNECT_SECONDS):
            return await connect(settings, "fleetprobe-recorder-simulator")

    try:
        # SIGINT/SIGTERM stop the wait for NATS too, not only the serving.
        connected, nc = await unless_stopped(connecting(), stop)
    except TimeoutError:
        log.error(
            "cannot connect url=%s: no NATS server answered within %gs",
            redact(args.nats_url),
            CONNECT_SECONDS,
        )
        return 1
    except (OSError, nats.errors.Error) as exc:
        log.error("cannot connect url=%s error=%r", redact(args.nats_url), exc)
        return 1
    if not connected or nc is None:
        log.info("stopped while connecting")
        return 0
    simulator = RecorderSimulator(nc, args.subject, root=args.root)
    try:
        await simulator.start()
        await stop.wait()
    finally:
        await simulator.stop()
        await nc.drain()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings: {settings_error(exc)}", file=sys.stderr)
        return 2
    args = parse_args(argv, settings)
    setup_logging(args.log_level)
    try:
        return asyncio.run(serve(args, settings))
    except KeyboardInterrupt:  # a second Ctrl-C before the handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
