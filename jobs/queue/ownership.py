"""Whose queue is this?  The job stream, its durable consumer and the leader bucket record
the installation they belong to (the id in its database, storage.installation), so that two
installations on one NATS server cannot take each other's jobs.

The stream and the consumer carry it in their ``metadata`` (key :data:`OWNER_KEY`), the
key-value bucket in its ``description`` (nats-py's ``KeyValueConfig`` has no metadata).  A
process finds one of three things at start (:func:`verdict`): its own id (go on), none
(made by a fleetprobe before installation ids: claim it), another id (refuse to start, with
one line saying what to set: ``FLEETPROBE_INSTANCE`` or another ``NATS_URL``).
"""

from __future__ import annotations

import logging
from enum import StrEnum

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import TaskiqState

from core.natsurl import redact
from core.settings import Settings
from jobs.queue.errors import BrokerConfigError
from storage.db import init_db, make_engine
from storage.installation import installation_id

log = logging.getLogger(__name__)

OWNER_KEY = "fleetprobe.installation"
DESCRIPTION_PREFIX = "fleetprobe installation "


class NotOurQueueError(BrokerConfigError):
    """The queue found at NATS_URL belongs to another installation."""


class Verdict(StrEnum):
    OURS = "ours"
    UNCLAIMED = "unclaimed"
    THEIRS = "theirs"


def verdict(owner: str | None, ours: str) -> Verdict:
    """What a recorded owner means for this installation (pure)."""
    if not owner:
        return Verdict.UNCLAIMED
    return Verdict.OURS if owner == ours else Verdict.THEIRS


def owner_metadata(ours: str) -> dict[str, str]:
    return {OWNER_KEY: ours}


def description(ours: str) -> str:
    return f"{DESCRIPTION_PREFIX}{ours}"


def owner_in_description(text: str | None) -> str | None:
    """The installation a description names, or None (pure).

    >>> owner_in_description("fleetprobe installation 3f2c")
    '3f2c'
    """
    if text and text.startswith(DESCRIPTION_PREFIX):
        return text.removeprefix(DESCRIPTION_PREFIX).strip() or None
    return None


def refusal(kind: str, name: str, owner: str, ours: str, nats_url: str) -> NotOurQueueError:
    return NotOurQueueError(
        f"the {kind} {name} on NATS {redact(nats_url)} belongs to another fleetprobe "
        f"installation ({owner}; this database's is {ours}): set FLEETPROBE_INSTANCE to a "
        "name of this installation's own, or point NATS_URL at another NATS server"
    )


async def claim_stream(js: JetStreamContext, stream: str, ours: str, nats_url: str) -> StreamConfig:
    """Check the job stream is ours; record us on it when nobody is recorded.  Returns
    its live configuration."""
    info = await js.stream_info(stream)
    config = info.config
    owner = (config.metadata or {}).get(OWNER_KEY)
    found = verdict(owner, ours)
    if found is Verdict.THEIRS:
        assert owner is not None
        raise refusal("job stream", stream, owner, ours, nats_url)
    if found is Verdict.UNCLAIMED:
        config.metadata = dict(config.metadata or {}) | owner_metadata(ours)
        config.description = description(ours)
        await js.update_stream(config)
        log.info("job stream claimed stream=%s installation=%s", stream, ours)
    return config


def check_consumer(live: ConsumerConfig, ours: str, nats_url: str) -> None:
    """Refuse a durable consumer recorded as another installation's."""
    owner = (live.metadata or {}).get(OWNER_KEY)
    if verdict(owner, ours) is Verdict.THEIRS:
        assert owner is not None
        raise refusal("consumer", live.durable_name or "?", owner, ours, nats_url)


async def claim_bucket(js: JetStreamContext, bucket: str, ours: str, nats_url: str) -> None:
    """Check a key-value bucket is ours (or does not exist yet: whoever creates it puts
    :func:`description` on it); record us on it when nobody is recorded."""
    try:
        info = await js.stream_info(f"KV_{bucket}")
    except NotFoundError:
        return
    config = info.config
    owner = owner_in_description(config.description)
    found = verdict(owner, ours)
    if found is Verdict.THEIRS:
        assert owner is not None
        raise refusal("key-value bucket", bucket, owner, ours, nats_url)
    if found is Verdict.UNCLAIMED:
        config.description = description(ours)
        await js.update_stream(config)
        log.info("bucket claimed bucket=%s installation=%s", bucket, ours)


async def installation_of(
    state: TaskiqState, settings: Settings, engine: AsyncEngine | None = None
) -> str:
    """This process's installation: from the engine it already holds (``engine``, the
    host's; else a worker's runtime's), else from a short-lived one on ``DATABASE_URL``."""
    if engine is None:
        runtime = getattr(state, "runtime", None)  # a worker's runtime (jobs.worker), once open
        engine = getattr(runtime, "engine", None)
    if engine is not None:
        return await installation_id(engine)
    engine = make_engine(settings)
    try:
        await init_db(engine)
        return await installation_id(engine)
    finally:
        await engine.dispose()
