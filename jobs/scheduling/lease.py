"""A leader lease in a NATS key-value bucket: one scheduler kicks at a time.

The bucket's TTL is the lease: the holder rewrites its entry (compare-and-swap on the
revision) every third of the TTL; if it dies, the entry expires and the next claimant's
``create`` succeeds.  A clean shutdown deletes the entry so another takes over at once.
Scheduled kicks are also de-duplicated by JetStream (``Nats-Msg-Id``), so a brief overlap
of two leaders can never run a slot twice; the lease keeps the load on one process.

While NATS is away each refresh fails within :attr:`LeaderLease.refresh_timeout` (before
the next one is due) and the failures are said rarely (:class:`core.outage.OutageLog`);
a lease that lapses meanwhile is said once (``leadership lost``), when it is noticed.
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

from core.natsconn import OUTAGE_EVERY_SECONDS, OUTAGE_FIRST_GAP_SECONDS
from core.outage import OutageLog
from core.settings import Settings
from jobs.queue import ownership

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_SECONDS = 1.0
# A refresh's round trips, at most (nats-py's own request timeout is 5 s).
REFRESH_MAX_SECONDS = 5.0

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
        # The state last said in a log line: a lapse is noticed between refreshes.
        self._said_leader = False
        self._outage = OutageLog(
            f"leader lease holder={holder} bucket={bucket}",
            every=OUTAGE_EVERY_SECONDS,
            first=OUTAGE_FIRST_GAP_SECONDS,
            clock=clock,
        )

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def refresh_timeout(self) -> float:
        """How long one refresh may try: under the renewal period, so a refresh that
        cannot reach NATS ends before the next is due (APScheduler would skip that one
        with a WARNING each time), and never under half a second.

        >>> [round(LeaderLease(None, "b", "h", ttl).refresh_timeout, 2) for ttl in (1, 10, 60)]
        [0.5, 2.67, 5.0]
        """
        return max(0.5, min(REFRESH_MAX_SECONDS, 0.8 * self.renew_every))

    @property
    def lapsed(self) -> bool:
        """Held, then not renewed within the TTL (NATS away): not ours to act on, and
        not known to be anyone else's either."""
        return self._revision is not None and not self.is_leader

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
        started = self._clock()
        try:
            async with asyncio.timeout(self.refresh_timeout):
                await self._claim(started)
        except TimeoutError:  # NATS down: the lease lapses by itself after the TTL
            self._outage.log_failed(log, f"no answer from NATS within {self.refresh_timeout:.3g}s")
        except Exception as exc:
            self._outage.log_failed(log, repr(exc))
        else:
            self._outage.log_recovered(log)
        now_leader = self.is_leader
        if now_leader != self._said_leader:
            self._said_leader = now_leader
            log.info(
                "leadership %s holder=%s ttl_s=%.0f",
                "acquired" if now_leader else "lost",
                self.holder,
                self.ttl,
            )
        return now_leader

    async def _claim(self, started: float) -> None:
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
        except TimeoutError:
            log.warning(
                "leader lease not released holder=%s: no answer from NATS within %gs; it "
                "lapses by itself within ttl_s=%.0f",
                self.holder,
                RELEASE_TIMEOUT_SECONDS,
                self.ttl,
            )
        except Exception as exc:
            log.warning("leader lease release failed holder=%s error=%r", self.holder, exc)
        finally:
            self._revision = None
            self._said_leader = False


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
