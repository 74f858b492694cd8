"""Opening NATS connections with the same options everywhere."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from core.settings import Settings

log = logging.getLogger(__name__)


def connect_options(settings: Settings, name: str) -> dict[str, Any]:
    """Options for ``nats.connect``: reconnect for ever, name the connection, and the
    credentials every connection of the system uses.

    User/password or a token travel in ``NATS_URL`` (``nats://user:pass@host:4222``,
    ``nats://token@host:4222``); ``NATS_CREDS`` and ``NATS_TLS_*`` add a creds file and TLS.
    """

    async def _disconnected() -> None:
        # INFO: a clean close disconnects too; real outages show up as failing fetches/kicks.
        log.info("nats disconnected conn=%s", name)

    async def _reconnected() -> None:
        log.info("nats reconnected conn=%s", name)

    async def _error(exc: Exception) -> None:
        log.warning("nats error conn=%s error=%s", name, exc)

    options: dict[str, Any] = {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "disconnected_cb": _disconnected,
        "reconnected_cb": _reconnected,
        "error_cb": _error,
    }
    if settings.nats_creds_file:
        options["user_credentials"] = settings.nats_creds_file
    tls = tls_context(settings)
    if tls is not None:
        options["tls"] = tls
    return options


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context when a CA or a client certificate is configured."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    ctx = ssl.create_default_context(cafile=settings.nats_tls_ca)
    if settings.nats_tls_cert:
        ctx.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return ctx


async def connect(settings: Settings, name: str) -> Client:
    """Connect to ``settings.nats_url`` (reconnects for ever once connected)."""
    return await nats.connect(settings.nats_url, **connect_options(settings, name))


async def subscribe_ready(nc: Client, subject: str, **kwargs: Any) -> Subscription:
    """``nc.subscribe(subject, **kwargs)``, returning once the server has the subscription,
    so that a message published right after (by anyone) reaches it.

    nats-py's ``subscribe()`` + ``flush()`` does not promise that: ``flush()`` writes its
    PING to the socket at once, while the SUB waits in the client's pending buffer for the
    flusher task, so the PONG can come back before the server has processed the SUB.  A
    request sent then meets "no responders" (a few in a thousand against a local server).
    By the time the first PONG is in, the flusher has written the SUB; the second PING
    follows it, so its PONG vouches for the subscription."""
    sub = await nc.subscribe(subject, **kwargs)
    await nc.flush()
    await nc.flush()
    return sub
