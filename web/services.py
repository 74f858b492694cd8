"""What the web app is handed by its host process (``python scheduler.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.events import EventPublisher
from jobs.probe.check import CheckTools, RecorderCheck
from jobs.probe.health import HealthTracker, StateListener
from jobs.probe.http import make_http_client


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
    # This installation's id (storage.installation): the events of another installation on
    # the shared events subject are dropped (web.hub, web.waiting; jobs.events.EventFeed).
    installation_id: str
    scheduler: DeviceSchedule | None = None
    # The recorder:// check for POST /devices/validate (the host binds it to a recorder
    # client: the web layer may not load one); None: such a device cannot be tried here.
    recorder_check: RecorderCheck | None = None
    # Made on the first POST /devices/validate, closed with the app (close_check_tools).
    check_tools: CheckTools | None = None

    def tools(self) -> CheckTools:
        """The check tools of this process, made when first needed."""
        if self.check_tools is None:
            http = make_http_client(self.settings)
            self.check_tools = CheckTools(self.settings, http, recorder=self.recorder_check)
        return self.check_tools

    async def close_check_tools(self) -> None:
        tools, self.check_tools = self.check_tools, None
        if tools is not None:
            await tools.aclose()
            await tools.http.aclose()

    # Told of each state change the API stores (pause, resume), after its commit.
    state_listeners: list[StateListener] = field(default_factory=list)

    @cached_property
    def health(self) -> HealthTracker:
        """Writes device health for the API (a new device, pause and resume, a result
        entered by hand): one tracker for the process, as the worker and the scheduler
        hold one, so that its count of announced changes is the process's."""
        return HealthTracker(self.events, self.state_listeners)


def services_of(conn: HTTPConnection) -> Services:
    """The services of the app serving this request or WebSocket."""
    services: Services = conn.app.state.services
    return services
