"""fleetprobe as real processes: ``python scheduler.py`` (+ ``taskiq worker`` processes)
against the bench's nats-server, SQLite file and HTTP target; a WebSocket client on
``/ws/items`` that timestamps every ``check.created`` as it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.procs import Proc, Sampler, python, worker_command
from core.natsserver import free_port
from core.settings import Settings
from jobs.probe.health import health_write
from jobs.probe.state import Health
from storage.db import init_db, make_engine

READY = "fleetprobe running"
WORKER_READY = "worker runtime ready"


async def prepare_db(
    path: Path,
    count: int,
    address: str,
    interval: int,
    timeout: float,
    *,
    health: Health | None = None,
) -> str:
    """A fresh SQLite database holding ``count`` active devices (ids 1..count); returns its
    URL.  ``health``: every device's stored health, written as the health module writes it
    (a new device's, as the API gives it: ``Health.new``); None: no health row, the
    leader's first sweep makes them all."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(Settings(DATABASE_URL=url))  # type: ignore[call-arg]
    try:
        await init_db(engine)
    finally:
        await engine.dispose()
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    rows = ((f"bench-{i}", address, 1, interval, timeout, now, now) for i in range(1, count + 1))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO devices (name, address, is_active, interval_seconds, timeout_seconds,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if health is not None:
            w = health_write(0, 0, health)
            since = w.since.strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.executemany(
                "INSERT INTO device_health (device_id, state, since, revision, health,"
                " updated_at, stale_from_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (i, w.state, since, w.revision, w.health, now, w.stale_from_s)
                    for i in range(1, count + 1)
                ),
            )
    return url


@dataclass
class System:
    """One deployment: a scheduler.py process, and taskiq workers added on demand."""

    workdir: Path
    nats_url: str
    database_url: str
    sampler: Sampler
    extra_env: dict[str, str] = field(default_factory=dict)
    scheduler_args: list[str] = field(default_factory=list)
    worker_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[Proc] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {
            "NATS_URL": self.nats_url,
            "EMBEDDED_NATS": "false",
            "DATABASE_URL": self.database_url,
            "NATS_DATA_DIR": str(self.workdir / "data"),
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(self.port),
            "JOBS_STREAM": f"BENCH_{self.tag}",
            "JOBS_SUBJECT": f"bench.{self.tag}.jobs",
            "JOBS_DURABLE": f"bench-{self.tag}",
            "EVENTS_SUBJECT": f"bench.{self.tag}.items",
            "LEADER_BUCKET": f"bench_{self.tag}",
            "LOG_LEVEL": "INFO",
            "API_TOKEN": "",  # the bench's own client carries no token
            # The in-process worker alone; scale-out adds `taskiq worker`s itself (+1, +2).
            "WORKERS": "0",
        }
        env.update(self.extra_env)
        return env

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> float:
        """Start scheduler.py; seconds until it reported running."""
        script = str(Path(__file__).resolve().parent.parent / "scheduler.py")
        args = python(script, *self.scheduler_args)
        proc = Proc(
            "scheduler",
            args,
            self.env,
            self.workdir / f"scheduler-{self.tag}.log",
        )
        self.procs.append(proc)
        self.sampler.watch("scheduler", proc.pid)
        return proc.wait_for(READY, timeout)

    @property
    def scheduler(self) -> Proc:
        return self.procs[0]

    def add_worker(self, timeout: float = 60.0) -> Proc:
        index = sum(p.name.startswith("worker") for p in self.procs) + 1
        name = f"worker{index}"
        proc = Proc(
            name,
            worker_command(*self.worker_args),
            self.env,
            self.workdir / f"{name}-{self.tag}.log",
        )
        self.procs.append(proc)
        proc.wait_for(WORKER_READY, timeout)
        self.sampler.watch(name, proc.pid)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
            self.sampler.unwatch(proc.name)
        self.procs.clear()

    def stored(self, where: str, params: tuple[Any, ...] = ()) -> int:
        path = self.database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            row = conn.execute(f"SELECT count(*) FROM check_results WHERE {where}", params)
            return int(row.fetchone()[0])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = self.database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return list(conn.execute(sql, params))


@dataclass
class Event:
    received: float  # time.time() on arrival
    received_perf: float
    payload: dict[str, Any]


class Feed:
    """A WebSocket client of ``/ws/items?types=check.created`` recording every event."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[Event] = []
        self.closed: str | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Feed:
        self._ws = await connect(self.url, max_size=2**20, max_queue=None)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for text in self._ws:
                now, perf = time.time(), time.perf_counter()
                event = json.loads(text)
                if event.get("type") == "check.created":
                    self.events.append(Event(now, perf, event["payload"]))
                    self._changed.set()
        except Exception as exc:
            self.closed = repr(exc)
        else:
            close = self._ws.close_code
            self.closed = f"closed code={close} reason={self._ws.close_reason!r}"
        self._changed.set()

    async def wait_count(self, prefix: str, count: int, timeout: float) -> int:
        """Wait until ``count`` events whose run key starts with ``prefix`` arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        index = 0
        while True:
            for event in self.events[index:]:
                if str(event.payload.get("run_key", "")).startswith(prefix):
                    seen += 1
            index = len(self.events)
            remaining = deadline - loop.time()
            if seen >= count or remaining <= 0 or self.closed:
                return seen
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
