"""The receive path alone: CPU per task of taskiq's ``Receiver`` against fleetprobe's
``BatchReceiver`` (``jobs.queue.receiver``), on a nats-server of its own.

Each round queues N messages of one task (fleetprobe's own message, ``jobs.queue.kick``,
its argument a ``ProbeJob``), then one receiver takes them (``max_async_tasks`` =
``WORKER_CONCURRENCY``, fetches of ``FETCH_BATCH``) until every one ran and was
acknowledged (the work-queue stream empty).  The task does nothing but validate its
argument, so what is timed is fetching, decoding, starting, running and acknowledging.
CPU is the process's (``time.process_time``), per task; the receivers alternate round by
round.  By hand, for docs/performance.md::

    python -m bench.receiver --n 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from taskiq.receiver import Receiver

from core.natsserver import free_port, start_nats_server
from core.settings import Settings
from jobs.probe.job import ProbeJob, ProbeJobSpec, one_off_job
from jobs.queue.broker import FleetprobeBroker, make_broker
from jobs.queue.kick import kick_many
from jobs.queue.receiver import BatchReceiver

TASK = "bench.noop"


def _settings(nats_url: str, folder: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / f'{tag}.db'}",
        "JOBS_STREAM": f"R_{tag}",
        "JOBS_SUBJECT": f"r.{tag}.jobs",
        "JOBS_DURABLE": f"r-{tag}",
        "NATS_DATA_DIR": str(folder / "data"),
        "EMBEDDED_NATS": "false",
        "LOG_LEVEL": "WARNING",
    }
    return Settings(**env)  # type: ignore[arg-type]


async def _round(settings: Settings, kind: type[Receiver], n: int) -> float:
    """CPU µs per task for ``n`` tasks through a receiver of ``kind``."""
    broker: FleetprobeBroker = make_broker(settings, name="bench-receiver")
    done = 0
    all_done = asyncio.Event()

    async def noop(job: ProbeJob) -> None:
        nonlocal done
        assert isinstance(job, ProbeJob)
        done += 1
        if done == n:
            all_done.set()

    broker.register_task(noop, task_name=TASK)
    broker.is_worker_process = True
    await broker.startup()
    try:
        spec = ProbeJobSpec(device_id=1, address="http://127.0.0.1:9/", timeout=5, interval=60)
        jobs = [one_off_job(spec, f"bench:{uuid.uuid4().hex}:{i}", "manual") for i in range(n)]
        await kick_many(broker, TASK, jobs, [job.run_key for job in jobs])
        receiver = kind(
            broker,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            wait_tasks_timeout=5,
        )
        finish = asyncio.Event()
        started = time.process_time()
        listening = asyncio.create_task(receiver.listen(finish))
        await asyncio.wait_for(all_done.wait(), 120)
        while (await broker.js.stream_info(broker.stream_name)).state.messages:
            await asyncio.sleep(0.005)
        cpu = time.process_time() - started
        finish.set()
        await asyncio.wait_for(listening, 30)
        return cpu / n * 1e6
    finally:
        await broker.shutdown()


async def main(n: int, rounds: int) -> None:
    kinds: list[tuple[str, type[Receiver]]] = [
        ("taskiq Receiver", Receiver),
        ("BatchReceiver", BatchReceiver),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as tmp:
        folder = Path(tmp)
        server = start_nats_server("127.0.0.1", free_port(), folder / "store")
        try:
            figures: dict[str, list[float]] = {name: [] for name, _ in kinds}
            for _ in range(rounds):
                for name, kind in kinds:
                    figures[name].append(await _round(_settings(server.url, folder), kind, n))
        finally:
            server.stop()
    print(f"| receiver | CPU µs per task (median of {rounds}) | rounds |")
    print("|---|---|---|")
    for name, values in figures.items():
        runs = " / ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} | {runs} |")


def _args(argv: Any = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000, help="tasks per round (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per receiver (5)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _args()
    asyncio.run(main(args.n, args.rounds))
