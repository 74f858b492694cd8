"""``RecorderService``: the seed's ``start`` / ``stop`` / ``status`` API.

Every call names its ``task_id`` (default ``TASK_ID``) and holds no state of its own, so
commands for many tasks run at once over the one client::

    async with RecorderClient(settings) as client:
        service = RecorderService(client, default_task_id=settings.task_id)
        replies = await asyncio.gather(*(service.start(task_id=t) for t in ("a", "b")))
"""

from __future__ import annotations

from jobs.recorder.client import RecorderClient
from jobs.recorder.wire import Command, CommandName, Response, StartPayload, StopPayload


class RecorderService:
    def __init__(self, client: RecorderClient, default_task_id: str | None = None) -> None:
        self.client = client
        self.default_task_id = default_task_id or client.settings.task_id

    async def start(
        self, payload: StartPayload | None = None, *, task_id: str | None = None
    ) -> Response:
        """Start recording (``payload`` defaults to the recorder's defaults)."""
        return await self._send(task_id, "start", payload or StartPayload())

    async def stop(
        self, payload: StopPayload | None = None, *, task_id: str | None = None
    ) -> Response:
        return await self._send(task_id, "stop", payload or StopPayload())

    async def status(self, *, task_id: str | None = None) -> Response:
        return await self._send(task_id, "status", None)

    async def _send(
        self, task_id: str | None, cmd: CommandName, payload: StartPayload | StopPayload | None
    ) -> Response:
        command = Command(task_id=task_id or self.default_task_id, cmd=cmd, payload=payload)
        reply = await self.client.send(command)
        return reply.response
