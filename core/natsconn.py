"""Opening NATS connections with the same options everywhere."""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client

from core.settings import Settings

log = logging.getLogger(__name__)


def connect_options(settings: Settings, name: str) -> dict[str, Any]:
    """Options for ``nats.connect``: reconnect for ever, name the connection.

    Credentials travel in ``NATS_URL`` (``nats://user:pass@host:4222`` or a token).
    """

    async def _disconnected() -> None:
        log.warning("nats disconnected conn=%s", name)

    async def _reconnected() -> None:
        log.info("nats reconnected conn=%s", name)

    async def _error(exc: Exception) -> None:
        log.warning("nats error conn=%s error=%s", name, exc)

    return {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "disconnected_cb": _disconnected,
        "reconnected_cb": _reconnected,
        "error_cb": _error,
    }


async def connect(settings: Settings, name: str) -> Client:
    """Connect to ``settings.nats_url`` (reconnects for ever once connected)."""
    return await nats.connect(settings.nats_url, **connect_options(settings, name))
