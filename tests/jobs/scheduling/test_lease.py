"""The leader lease in a NATS key-value bucket: one holder at a time, takeover after the
holder dies (TTL) or at once when it releases."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from core.natsserver import EmbeddedNats, free_port, start_nats_server
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


async def test_refresh_failures_are_said_rarely_and_the_lapse_once(
    nats_server: EmbeddedNats, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    client = await nats.connect(nats_server.url)
    a = LeaderLease(client.jetstream(), bucket, "a", ttl=10, clock=lambda: now[0])
    assert await a.refresh()
    await client.close()  # every refresh from now on fails at once
    caplog.set_level(logging.INFO, "jobs.scheduling.lease")
    held = []
    for second in range(1, 61):  # a minute of refreshes, one a second
        now[0] = float(second)
        held.append(await a.refresh())
    assert held == [True] * 9 + [False] * 51  # the TTL after the last renewal
    assert a.lapsed
    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.scheduling.lease"]
    # 60 failures: said at 1 s, then after 2, 4, 8, 16 s (core.outage), not 60 times.
    failures = [line for line in lines if "leader lease holder=a" in line]
    assert len(failures) == 5, lines
    assert "unavailable error=ConnectionClosedError" in failures[0]
    assert "still unavailable failures=31 for_s=30" in failures[-1]
    # The lapse is said once, when noticed (between refreshes, not only in one).
    assert [line for line in lines if "leadership" in line] == ["leadership lost holder=a ttl_s=10"]


def test_a_refresh_ends_before_the_next_one_is_due() -> None:
    for ttl in (2.0, 3.0, 10.0, 30.0, 3600.0):
        lease = LeaderLease(None, "b", "h", ttl)  # type: ignore[arg-type]
        assert lease.refresh_timeout < lease.renew_every


async def test_a_refresh_while_nats_is_away_gives_up_within_its_bound_saying_why(
    tmp_path: Path, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_nats_server("127.0.0.1", free_port(), tmp_path / "store")
    try:
        # Reconnecting for ever, as every fleetprobe connection: requests wait, they do
        # not fail at once.
        client = await nats.connect(server.url, max_reconnect_attempts=-1)
        a = LeaderLease(client.jetstream(), bucket, "a", ttl=10)
        assert await a.refresh()
        server.stop()
        caplog.set_level(logging.INFO, "jobs.scheduling.lease")
        await a.refresh()  # still inside its TTL, whatever it answers
    finally:
        server.stop()
        await client.close()
    said = " ".join(r.getMessage() for r in caplog.records)
    # nats-py's own request timeout (5 s) outlasts the renewal period (3.3 s): ours does not.
    assert "unavailable error=no answer from NATS within 2.67s" in said, said
