"""What the web app is handed by its host process (``python scheduler.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.settings import Settings
from jobs.scheduling import ProbeScheduler


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    broker: AsyncBroker
    nc: Client
    scheduler: ProbeScheduler | None = None
    extras: dict[str, object] = field(default_factory=dict)
