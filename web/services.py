"""What the web app is handed by its host process (``python scheduler.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.events import EventPublisher
from jobs.probe.health import HealthTracker, StateListener


class DeviceSchedule(Protocol):
    """The host's probe scheduler, as the API uses it (:class:`jobs.probe.scheduler.
    ProbeScheduler`): told at once when a device changes through the API."""

    async def sync_device(self, device_id: int) -> None: ...


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    broker: AsyncBroker
    nc: Client
    # Publishes device.* / check.created / monitor.cycle.finished on settings.events_subject.
    events: EventPublisher
    scheduler: DeviceSchedule | None = None
    # Told of each state change the API stores (pause, resume), after its commit.
    state_listeners: list[StateListener] = field(default_factory=list)

    def health(self) -> HealthTracker:
        """Writes device health for the API (a new device, pause and resume)."""
        return HealthTracker(self.events, self.state_listeners)


def services_of(conn: HTTPConnection) -> Services:
    """The services of the app serving this request or WebSocket."""
    services: Services = conn.app.state.services
    return services
