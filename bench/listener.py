"""The store path's alerts listener (``jobs.alerts.enqueue.change_listener``): its CPU per
state change, for batches of C changes, with no channel and with one default channel.

A fresh SQLite file and a private JetStream stream on a nats-server of its own; D
devices, one stored ``up -> down`` change each; the listener told of them C at a time,
as the health hook tells it after a batch's commit (on a tree whose listener takes one
change per call, the same changes are handed over one call each, as its hook did).  CPU
is the process's (``time.process_time``: the event loop, aiosqlite's thread, nats-py),
per change; with the channel, every change records its ledger row and queues its
delivery (no worker runs: the messages stay in the stream).  By hand, for the store
path's section of docs/performance.md::

    python -m bench.listener --devices 1000 --per-batch 1,20,200
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.natsserver import free_port, start_nats_server
from core.settings import Settings
from jobs.alerts import enqueue
from jobs.queue.broker import make_broker
from jobs.worker import register_tasks
from storage.alert_models import Channel
from storage.db import init_db, make_engine, session_factory
from storage.models import Device, StateChange

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BATCHED = hasattr(enqueue, "enqueue_changes")  # this tree's listener takes a batch


def _settings(nats_url: str, db: Path) -> Settings:
    tag = uuid.uuid4().hex[:10]
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "JOBS_STREAM": f"B_{tag}",
        "JOBS_SUBJECT": f"b.{tag}.jobs",
        "JOBS_DURABLE": f"b-{tag}",
        "EVENTS_SUBJECT": f"b.{tag}.items.updates",
        "NATS_SUBJECT": f"b.{tag}.rec.control",
        "METRICS_SUBJECT": f"b.{tag}.metrics",
        "NATS_DATA_DIR": str(db.parent / "data"),
        "EMBEDDED_NATS": "false",
        "LOG_LEVEL": "WARNING",
    }
    return Settings(**env)  # type: ignore[arg-type]


def _stored_id(device: Device) -> int:
    """A committed row's id: set by then, though the model types it ``int | None``."""
    assert device.id is not None, device
    return device.id


async def _changes(settings: Settings, devices: int, channel: bool) -> list[Any]:
    """A fresh database: ``devices`` devices, a stored change each; the records."""
    engine = make_engine(settings)
    try:
        await init_db(engine)
        async with session_factory(engine)() as session:
            rows = [Device(name=f"d{i}", address="http://127.0.0.1:1/") for i in range(devices)]
            session.add_all(rows)
            if channel:
                session.add(
                    Channel(
                        name="hook", kind="webhook", url="http://127.0.0.1:9/h", is_default=True
                    )
                )
            await session.commit()
            ids = [_stored_id(d) for d in rows]
            changes = [
                StateChange(
                    device_id=i,
                    revision=1,
                    from_state="up",
                    to_state="down",
                    at=T0 + timedelta(seconds=n),
                    cause="status 503",
                    run_key=f"probe:{i}:0",
                )
                for n, i in enumerate(ids)
            ]
            session.add_all(changes)
            await session.commit()
            return [
                enqueue.ChangeRecord(
                    c.id,
                    c.device_id,
                    c.revision,
                    c.from_state,
                    c.to_state,
                    c.at,
                    c.cause,
                    c.run_key,
                )
                for c in changes
                if c.id is not None
            ]
    finally:
        await engine.dispose()


async def _one(
    nats_url: str, workdir: Path, devices: int, per_batch: int, channel: bool
) -> dict[str, Any]:
    db = workdir / f"listener-{per_batch}-{int(channel)}-{uuid.uuid4().hex[:6]}.db"
    settings = _settings(nats_url, db)
    records = await _changes(settings, devices, channel)
    engine = make_engine(settings)
    broker = make_broker(settings, name="bench")
    register_tasks(broker)
    broker.is_worker_process = False
    await broker.startup()
    listener: Any = enqueue.change_listener(engine, broker)
    per_change: list[float] = []
    try:
        for start in range(0, len(records), per_batch):
            batch = records[start : start + per_batch]
            cpu = time.process_time()
            if BATCHED:
                await listener(batch)
            else:
                for record in batch:
                    await listener(record)
            per_change.append((time.process_time() - cpu) / len(batch) * 1e6)
        async with engine.connect() as conn:
            from sqlalchemy import func, select

            from storage.alert_models import Notification

            ledger = (
                await conn.execute(select(func.count()).select_from(Notification))
            ).scalar_one()
    finally:
        await broker.shutdown()
        await engine.dispose()
    return {
        "per_batch": per_batch,
        "channel": channel,
        "changes": len(records),
        "ledger_rows": ledger,
        "cpu_us_per_change": round(statistics.median(per_change), 1),
        "mean_cpu_us_per_change": round(statistics.fmean(per_change), 1),
        "batches": len(per_change),
    }


async def run_listener(
    workdir: Path, devices: int, per_batch: Sequence[int], nats_url: str | None = None
) -> dict[str, Any]:
    """CPU per change for each batch size, without and with a channel."""
    server = None
    if nats_url is None:
        server = start_nats_server("127.0.0.1", free_port(), workdir / "nats")
        nats_url = server.url
    try:
        out = [
            await _one(nats_url, workdir, devices, c, channel)
            for channel in (False, True)
            for c in per_batch
        ]
    finally:
        if server is not None:
            server.stop()
    return {"batched_listener": BATCHED, "devices": devices, "results": out}


async def _main() -> None:  # pragma: no cover - by hand: python -m bench.listener
    import argparse
    import json
    import os
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--per-batch", default="1,20,200")
    args = p.parse_args()
    sizes = [int(x) for x in args.per_batch.split(",")]
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        r = await run_listener(Path(tmp), args.devices, sizes)
    r["loadavg_before"] = load
    r["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(r))
    for row in r["results"]:
        print(
            f"channel={row['channel']!s:5} per_batch={row['per_batch']:4} "
            f"cpu_us_per_change median={row['cpu_us_per_change']:8.1f} "
            f"mean={row['mean_cpu_us_per_change']:8.1f} ledger={row['ledger_rows']}"
        )


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
