"""Recorder test helpers: the simulator on a test's subject, scripted fake recorders, and a
nats-server that allows 10 MB messages and serves its monitoring endpoint."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg

from core.natsconn import subscribe_ready
from core.natsserver import find_nats_server, free_port, is_reachable
from core.settings import Settings
from jobs.recorder.simulator import RecorderSimulator


@contextlib.asynccontextmanager
async def running_simulator(settings: Settings) -> AsyncIterator[RecorderSimulator]:
    nc = await nats.connect(settings.nats_url, name="test-simulator")
    simulator = RecorderSimulator(nc, settings.nats_subject)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
        await nc.close()


Script = Callable[[dict[str, Any]], bytes | None]


@contextlib.asynccontextmanager
async def fake_recorder(url: str, subject: str, script: Script) -> AsyncIterator[list[bytes]]:
    """Answers each request with ``script(command)`` (``None``: never answers); yields the
    raw requests seen."""
    nc = await nats.connect(url, name="test-fake-recorder")
    seen: list[bytes] = []

    async def on_msg(msg: Msg) -> None:
        seen.append(msg.data)
        answer = script(json.loads(msg.data))
        if answer is not None:
            await msg.respond(answer)

    await subscribe_ready(nc, subject, cb=on_msg)
    try:
        yield seen
    finally:
        await nc.close()


def reply_bytes(command: dict[str, Any], **changes: Any) -> bytes:
    body: dict[str, Any] = {
        "task_id": command["task_id"],
        "msg_status": "success",
        "app_status": "stopped",
        "payload": {
            "segment_time": None,
            "file_path": None,
            "at_started": None,
            "at_stopped": None,
        },
    }
    body.update(changes)
    return json.dumps(body).encode()


@dataclass
class RoomyNats:
    """A nats-server with ``max_payload`` 16 MB and its HTTP monitoring port."""

    process: subprocess.Popen[bytes]
    url: str
    monitor_url: str

    def connections(self, name: str) -> list[dict[str, Any]]:
        """Open client connections named ``name``, as the server sees them (``/connz``)."""
        data = httpx.get(f"{self.monitor_url}/connz", params={"limit": 1000}).json()
        return [c for c in data.get("connections") or [] if c.get("name") == name]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextlib.contextmanager
def roomy_nats(folder: Path) -> Iterator[RoomyNats]:
    port, monitor = free_port(), free_port()
    conf = folder / "roomy.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\nmax_payload: 16MB\n")
    log = (folder / "roomy.log").open("ab")
    process = subprocess.Popen(
        [find_nats_server(), "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
    )
    log.close()
    server = RoomyNats(process, f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}")
    try:
        deadline = time.monotonic() + 10
        while not is_reachable(server.url, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"roomy nats-server did not start: {conf.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
