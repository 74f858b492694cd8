"""``python -m jobs.recorder``: send one command to a recorder and print its reply.

The command-line face of the NATS01 client (its ``python main.py``)::

    python -m jobs.recorder start --task-id cam1 --segment-time 600 --vid-byterate 3000
    python -m jobs.recorder status --task-id cam1
    python -m jobs.recorder stop --task-id cam1
    python -m jobs.recorder demo            # start -> status -> stop, as NATS01's main.py

The reply is printed as JSON on stdout.  Exit codes: 0 a reply with ``msg_status``
``success``, 1 a reply with ``error``, 2 bad arguments or settings, 3 no reply (no
recorder, timeout, NATS unreachable, an invalid reply: the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from core.logs import setup_logging
from core.settings import Settings, settings_error
from jobs.recorder.client import RecorderClient
from jobs.recorder.errors import RecorderError
from jobs.recorder.service import RecorderService
from jobs.recorder.wire import Response, StartPayload, StopPayload

START_FIELDS = ("segment_time", "snd_source", "snd_byterate", "vid_stream", "vid_byterate")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m jobs.recorder",
        description="Send start/stop/status to a recorder over NATS (NATS_URL, NATS_SUBJECT, "
        "NATS_TIMEOUT, TASK_ID from the environment) and print the reply as JSON.",
    )
    p.add_argument("cmd", choices=["start", "stop", "status", "demo"])
    p.add_argument("--task-id", help="recorder task id (default TASK_ID, task01)")
    p.add_argument("--segment-time", type=float, help="seconds per file (start, stop)")
    p.add_argument("--snd-source", help="sound source (start)")
    p.add_argument("--snd-byterate", type=int, help="audio kbit/s (start)")
    p.add_argument("--vid-stream", help="video stream (start)")
    p.add_argument("--vid-byterate", type=int, help="video kbit/s (start)")
    return p.parse_args(argv)


def start_payload(args: argparse.Namespace) -> StartPayload:
    given = {f: getattr(args, f) for f in START_FIELDS if getattr(args, f) is not None}
    return StartPayload(**given)


def stop_payload(args: argparse.Namespace) -> StopPayload:
    if args.segment_time is None:
        return StopPayload()
    return StopPayload(segment_time=args.segment_time)


async def send(args: argparse.Namespace, settings: Settings) -> list[Response]:
    async with RecorderClient(settings, name="fleetprobe-recorder-cli") as client:
        service = RecorderService(client)
        task_id = args.task_id
        if args.cmd == "start":
            return [await service.start(start_payload(args), task_id=task_id)]
        if args.cmd == "stop":
            return [await service.stop(stop_payload(args), task_id=task_id)]
        if args.cmd == "status":
            return [await service.status(task_id=task_id)]
        return [
            await service.start(start_payload(args), task_id=task_id),
            await service.status(task_id=task_id),
            await service.stop(stop_payload(args), task_id=task_id),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings()
        start_payload(args)
        stop_payload(args)
    except ValidationError as exc:
        print(f"invalid arguments or settings: {settings_error(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        replies = asyncio.run(send(args, settings))
    except RecorderError as exc:
        print(f"no reply: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # Ctrl-C, waiting for NATS or a reply: a line, no traceback
        print("interrupted before a reply (a command already sent may still run)", file=sys.stderr)
        return 130
    for reply in replies:
        print(reply.model_dump_json())
    return 0 if all(r.msg_status == "success" for r in replies) else 1
