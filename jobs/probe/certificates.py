"""The certificates of ``https://`` targets, read by a handshake of their own and cached
per ``host:port``.

httpx-aiohttp (the default engine) does not expose the connection a response came over,
so an https check learns its target's certificate from a separate TLS handshake
(:func:`jobs.probe.kinds.tls.https_certificate`).  Certificates change rarely: one
handshake per host and port every :data:`CACHE_SECONDS` is plenty, and a fleet of https
checks does not double its connections.  Concurrent checks of one host share the one
handshake under way.  The handshake does not verify (verification is the HTTP request's
business, by the device's ``verify_tls``): the expiry is recorded either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from jobs.probe.facts import Facts
from jobs.probe.kinds.address import HttpTarget
from jobs.probe.kinds.tls import https_certificate

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
# A failed handshake is asked again sooner (the target may have been restarting).
FAILURE_CACHE_SECONDS = 60.0
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Certificate:
    """What an https check records of its target's certificate."""

    expires_at: datetime
    subject: str | None


class CertificateCache:
    """``(host, port)`` -> the certificate's expiry and subject (None when none was read)."""

    def __init__(
        self,
        *,
        ttl: float = CACHE_SECONDS,
        failure_ttl: float = FAILURE_CACHE_SECONDS,
        size: int = CACHE_SIZE,
    ) -> None:
        self._ttl, self._failure_ttl, self._size = ttl, failure_ttl, size
        self._known: OrderedDict[tuple[str, int], tuple[float, Certificate | None]] = OrderedDict()
        self._pending: dict[tuple[str, int], asyncio.Task[Certificate | None]] = {}
        self.handshakes = 0  # how many were made (the tests read it)

    async def certificate(self, target: HttpTarget, *, timeout: float) -> Certificate | None:
        """``target``'s certificate (its expiry and subject), or None when it could not
        be read."""
        key = (target.host, target.port)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(target, timeout), name=f"cert {key}")
            self._pending[key] = task
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: one check's deadline must not cancel the handshake others wait on.
        return await asyncio.shield(task)

    async def expires_at(self, target: HttpTarget, *, timeout: float) -> datetime | None:
        """When ``target``'s certificate expires, or None when it could not be read."""
        found = await self.certificate(target, timeout=timeout)
        return None if found is None else found.expires_at

    async def _fetch(self, target: HttpTarget, timeout: float) -> Certificate | None:
        self.handshakes += 1
        facts: Facts = await https_certificate(target, timeout=timeout, verify_tls=False)
        expires = facts.certificate_expires_at
        found = None if expires is None else Certificate(expires, facts.certificate_subject)
        if expires is None:
            log.info(
                "certificate not read host=%s port=%d error=%s",
                target.host,
                target.port,
                facts.error,
            )
        ttl = self._ttl if expires is not None else self._failure_ttl
        key = (target.host, target.port)
        self._known[key] = (time.monotonic() + ttl, found)
        self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)
        return found
