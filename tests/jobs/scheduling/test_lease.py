"""The leader lease in a NATS key-value bucket: one holder at a time, takeover after the
holder dies (TTL) or at once when it releases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client

from core.natsserver import EmbeddedNats
from jobs.scheduling.lease import LeaderLease


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
def bucket() -> str:
    return f"lease_{uuid.uuid4().hex[:8]}"


async def test_only_one_claimant_holds_the_lease(nc: Client, bucket: str) -> None:
    a = LeaderLease(nc.jetstream(), bucket, "a", ttl=5)
    b = LeaderLease(nc.jetstream(), bucket, "b", ttl=5)
    assert await a.refresh() is True
    assert await b.refresh() is False
    assert await a.refresh() is True  # renewing keeps it
    assert await b.refresh() is False
    assert a.is_leader and not b.is_leader


async def test_another_takes_over_after_the_holder_stops_renewing(nc: Client, bucket: str) -> None:
    a = LeaderLease(nc.jetstream(), bucket, "a", ttl=1)
    b = LeaderLease(nc.jetstream(), bucket, "b", ttl=1)
    assert await a.refresh()
    assert not await b.refresh()
    await asyncio.sleep(1.5)  # a "died": its entry expires with the bucket's TTL
    assert not a.is_leader  # a lapsed lease is not held, even before a notices
    assert await b.refresh()
    assert not await a.refresh()  # a comes back: the lease is b's now


async def test_a_released_lease_is_taken_at_once(nc: Client, bucket: str) -> None:
    a = LeaderLease(nc.jetstream(), bucket, "a", ttl=30)
    b = LeaderLease(nc.jetstream(), bucket, "b", ttl=30)
    assert await a.refresh()
    await a.release()
    assert not a.is_leader
    assert await b.refresh()


async def test_a_lease_is_not_held_while_nats_is_unreachable(
    nats_server: EmbeddedNats, bucket: str
) -> None:
    client = await nats.connect(nats_server.url)
    a = LeaderLease(client.jetstream(), bucket, "a", ttl=1)
    assert await a.refresh()
    await client.close()
    assert await a.refresh() is True  # renewal failed, but the lease is inside its TTL
    await asyncio.sleep(1.1)
    assert await a.refresh() is False  # could not renew: lapsed
