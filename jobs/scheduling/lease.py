"""A leader lease in a NATS key-value bucket: one scheduler kicks at a time.

The bucket's TTL is the lease: the holder rewrites its entry (compare-and-swap on the
revision) every third of the TTL; if it dies, the entry expires and the next claimant's
``create`` succeeds.  A clean shutdown deletes the entry so another takes over at once.
Scheduled kicks are also de-duplicated by JetStream (``Nats-Msg-Id``), so a brief overlap
of two leaders can never run a slot twice; the lease keeps the load on one process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from core.settings import Settings
from jobs.queue import ownership

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_SECONDS = 1.0

LEASE_KEY = "scheduler"


class LeaderLease:
    def __init__(
        self,
        js: JetStreamContext,
        bucket: str,
        holder: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        description: str | None = None,
    ) -> None:
        self._js = js
        # Whose bucket it is (jobs.queue.ownership); the same text in every process, or creating
        # it again would meet "already in use with a different configuration".
        self._description = description
        self._bucket = bucket
        self.holder = holder
        self.ttl = ttl
        self._clock = clock
        self._kv: KeyValue | None = None
        self._revision: int | None = None
        self._renewed_at = float("-inf")

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def is_leader(self) -> bool:
        """Held, and renewed recently enough that nobody else can have taken it."""
        return self._revision is not None and self._clock() - self._renewed_at < self.ttl

    async def _store(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.create_key_value(
                KeyValueConfig(
                    bucket=self._bucket,
                    history=1,
                    ttl=self.ttl,
                    storage=StorageType.FILE,
                    description=self._description,
                )
            )
        return self._kv

    async def refresh(self) -> bool:
        """Renew the lease if held, else try to take it.  Returns ``is_leader``."""
        was_leader = self.is_leader
        started = self._clock()
        try:
            kv = await self._store()
            value = self.holder.encode()
            if self._revision is not None:
                try:
                    self._revision = await kv.update(LEASE_KEY, value, last=self._revision)
                except KeyWrongLastSequenceError:
                    self._revision = None  # expired and taken by another process
            if self._revision is None:
                try:
                    self._revision = await kv.create(LEASE_KEY, value)
                except KeyWrongLastSequenceError:
                    self._revision = None
            if self._revision is not None:
                self._renewed_at = started
        except Exception as exc:  # NATS down: the lease lapses by itself after the TTL
            log.warning("leader lease refresh failed holder=%s error=%r", self.holder, exc)
        now_leader = self.is_leader
        if now_leader != was_leader:
            log.info(
                "leadership %s holder=%s ttl_s=%.0f",
                "acquired" if now_leader else "lost",
                self.holder,
                self.ttl,
            )
        return now_leader

    async def release(self) -> None:
        """Give the lease up (on a clean shutdown) so another scheduler takes over now."""
        if self._revision is None or self._kv is None:
            return
        try:
            # Bounded: with NATS away the lease just expires (TTL), and a stop must not
            # wait nats-py's 5 s publish timeout.
            async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                await self._kv.delete(LEASE_KEY, last=self._revision)
            log.info("leadership released holder=%s", self.holder)
        except Exception as exc:
            log.warning("leader lease release failed holder=%s error=%r", self.holder, exc)
        finally:
            self._revision = None


async def owned_lease(
    js: JetStreamContext, settings: Settings, ours: str | None, holder: str
) -> LeaderLease:
    """The scheduler's leader lease, in a bucket checked (or claimed) to be ours."""
    if ours is None:
        raise RuntimeError("the broker has not started: its installation is not known yet")
    await ownership.claim_bucket(js, settings.leader_bucket, ours, settings.nats_url)
    return LeaderLease(
        js,
        settings.leader_bucket,
        holder,
        settings.leader_lease_seconds,
        description=ownership.description(ours),
    )
