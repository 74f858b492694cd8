"""The benchmark's HTTP target: a raw asyncio HTTP/1.1 keep-alive responder.

The cheapest server we could write (no parser, no framework): every request head
(``...\\r\\n\\r\\n``; probes send GETs without a body) gets a fixed ``200 ok``. It runs in
its own process(es) so its CPU shows apart; ``--procs K`` starts K processes on one
port (SO_REUSEPORT) when one would be the bottleneck.

    python -m bench.target --port 8080 [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)
HEAD_END = b"\r\n\r\n"


class Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        heads = buf.count(HEAD_END)
        if heads and self.transport is not None:
            self.transport.write(RESPONSE * heads)
            buf = buf[buf.rfind(HEAD_END) + len(HEAD_END) :]
        self.buf = buf


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    return sock


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, sock=_listening_socket(port))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def serve(port: int) -> None:
    try:
        import uvloop

        uvloop.run(_serve(port))
    except ImportError:
        asyncio.run(_serve(port))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--procs", type=int, default=1)
    args = p.parse_args()
    extra = [
        multiprocessing.Process(target=serve, args=(args.port,), daemon=True)
        for _ in range(args.procs - 1)
    ]
    for proc in extra:
        proc.start()

    def _stop_children(*_: object) -> None:
        for proc in extra:
            if proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    try:
        print(f"READY {args.port}", flush=True)
        serve(args.port)
    finally:
        _stop_children()
        for proc in extra:
            proc.join(timeout=2)
    sys.exit(0)


if __name__ == "__main__":
    main()
