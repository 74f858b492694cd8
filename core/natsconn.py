"""Opening NATS connections with the same options everywhere."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from core.natsurl import redact
from core.outage import OutageLog
from core.settings import Settings

log = logging.getLogger(__name__)

# What nats-py reports while no server answers (refused, timed out, dropped).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    nats.errors.NoServersError,
    nats.errors.UnexpectedEOF,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionClosedError,
)
# Outage lines of one connection: at once, after 2, 4, 8, 16 s, then every 30 s.
OUTAGE_FIRST_GAP_SECONDS = 2.0
OUTAGE_EVERY_SECONDS = 30.0


def nats_outage(settings: Settings, name: str) -> OutageLog:
    """The outage lines of one connection (see :func:`connect_options`)."""
    return OutageLog(
        f"nats conn={name} servers={redact(settings.nats_url)}",
        every=OUTAGE_EVERY_SECONDS,
        first=OUTAGE_FIRST_GAP_SECONDS,
    )


def connect_options(
    settings: Settings, name: str, outage: OutageLog | None = None
) -> dict[str, Any]:
    """Options for ``nats.connect``: reconnect for ever, name the connection, and the
    credentials every connection of the system uses.

    User/password or a token travel in ``NATS_URL`` (``nats://user:pass@host:4222``,
    ``nats://token@host:4222``); ``NATS_CREDS`` and ``NATS_TLS_*`` add a creds file and TLS.

    While no server answers (at start, or after a disconnect) nats-py retries every second
    and reports each failure: the lines are rate-limited (:class:`core.outage.OutageLog`:
    one when it starts, then after 2, 4, 8, 16 s and every 30 s with a count, one when it
    ends).
    """
    lines = outage or nats_outage(settings, name)

    async def _disconnected() -> None:
        # INFO: a clean close disconnects too; real outages show up as failing fetches/kicks.
        log.info("nats disconnected conn=%s", name)

    async def _reconnected() -> None:
        lines.log_recovered(log)
        log.info("nats reconnected conn=%s", name)

    async def _error(exc: Exception) -> None:
        if isinstance(exc, OUTAGE_ERRORS):  # no server answers: one outage, rate-limited
            lines.log_failed(log, f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
        else:  # a protocol or permission error: each one says something
            log.warning("nats error conn=%s error=%r", name, exc)

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
    """Connect to the servers of ``NATS_URL``: waits (cancellable) until one answers,
    logging as :func:`connect_options` says, then reconnects for ever."""
    outage = nats_outage(settings, name)
    nc = await nats.connect(settings.nats_servers, **connect_options(settings, name, outage))
    outage.log_recovered(log)
    return nc


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


async def close_quietly(nc: Client, timeout: float = 2.0) -> None:
    """Drain ``nc`` (pending messages go out), or close it when it cannot drain (NATS
    away: ``ConnectionReconnectingError``); never raises."""
    try:
        async with asyncio.timeout(timeout):
            await nc.drain()
        return
    except Exception as exc:
        log.info("nats drain failed conn=%s error=%r; closing", nc.options.get("name"), exc)
    try:
        await nc.close()
    except Exception as exc:
        log.debug("nats close failed error=%r", exc)
