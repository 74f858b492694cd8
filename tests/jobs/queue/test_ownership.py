"""Two installations on one NATS server (issue 15, item 1): the queue records whose it is;
a process of another database refuses it in one line; FLEETPROBE_INSTANCE gives each
installation queue names of its own; a second process on the same database joins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig
from sqlalchemy import func, select, text
from sqlmodel import col

from core.natsserver import EmbeddedNats
from core.settings import Settings
from jobs.probe.job import ProbeJob
from jobs.probe.kick import kick_probes
from jobs.queue.broker import make_broker, stream_config
from jobs.queue.ownership import (
    OWNER_KEY,
    NotOurQueueError,
    Verdict,
    check_consumer,
    claim_bucket,
    owner_in_description,
    verdict,
)
from jobs.scheduling.lease import owned_lease
from jobs.worker import register_tasks
from storage.db import init_db, make_engine, session_factory
from storage.installation import installation_id
from storage.migrate import SchemaError
from storage.models import CheckResult, Device
from tests.conftest import isolated_env
from tests.helpers import running_worker, wait_for
from tests.processes import scheduler_cmd, taskiq_worker


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (None, Verdict.UNCLAIMED),
        ("", Verdict.UNCLAIMED),
        ("a1", Verdict.OURS),
        ("b2", Verdict.THEIRS),
    ],
)
def test_verdict_on_a_recorded_owner(owner: str | None, expected: Verdict) -> None:
    assert verdict(owner, "a1") is expected


@pytest.mark.parametrize(
    ("text", "owner"),
    [
        ("fleetprobe installation 3f2c", "3f2c"),
        ("fleetprobe installation ", None),
        ("the leader lease", None),
        (None, None),
    ],
)
def test_owner_read_from_a_bucket_description(text: str | None, owner: str | None) -> None:
    assert owner_in_description(text) == owner


@pytest.mark.parametrize(
    ("metadata", "refused"),
    [
        (None, False),  # made before installation ids: claimed on add_consumer
        ({"_nats.level": "1"}, False),
        ({OWNER_KEY: "a1"}, False),
        ({OWNER_KEY: "b2"}, True),
    ],
)
def test_a_consumer_recorded_as_another_installations_is_refused(
    metadata: dict[str, str] | None, refused: bool
) -> None:
    live = ConsumerConfig(durable_name="fleetprobe-workers", metadata=metadata)
    if refused:
        with pytest.raises(NotOurQueueError, match=r"consumer fleetprobe-workers on NATS .*\(b2;"):
            check_consumer(live, "a1", "nats://127.0.0.1:4222")
    else:
        check_consumer(live, "a1", "nats://127.0.0.1:4222")


@pytest.mark.parametrize(
    ("instance", "names"),
    [
        ("", ("FLEETPROBE_JOBS", "fleetprobe.jobs", "fleetprobe-workers", "fleetprobe_leader")),
        (
            "site-b",
            (
                "site-b_FLEETPROBE_JOBS",
                "site-b.fleetprobe.jobs",
                "site-b-fleetprobe-workers",
                "site-b_fleetprobe_leader",
            ),
        ),
    ],
)
def test_the_instance_name_prefixes_the_queue_names(instance: str, names: tuple[str, ...]) -> None:
    s = Settings(FLEETPROBE_INSTANCE=instance)  # type: ignore[call-arg]
    assert (s.jobs_stream, s.jobs_subject, s.jobs_durable, s.leader_bucket) == names
    assert s.events_subject == "items.updates"  # the seed's subject stays


@pytest.mark.parametrize("bad", ["a.b", "a b", "x*", "n" * 33])
def test_an_instance_name_nats_cannot_carry_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ValueError, match="FLEETPROBE_INSTANCE"):
        Settings(FLEETPROBE_INSTANCE=bad)  # type: ignore[call-arg]


def same_queue_other_database(env: dict[str, str], db: Path) -> dict[str, str]:
    return env | {"DATABASE_URL": f"sqlite+aiosqlite:///{db}"}


async def db_installation(settings: Settings) -> str:
    engine = make_engine(settings)
    try:
        await init_db(engine)
        return await installation_id(engine)
    finally:
        await engine.dispose()


async def test_every_process_on_one_database_shares_its_installation_and_queue(
    settings: Settings,
) -> None:
    ours = await db_installation(settings)
    async with (
        running_worker(settings, worker=False) as first,
        running_worker(settings, worker=True) as second,
    ):
        assert first.installation_id == second.installation_id == ours
        info = await first.js.stream_info(settings.jobs_stream)
        assert (info.config.metadata or {})[OWNER_KEY] == ours
        consumer = await first.js.consumer_info(settings.jobs_stream, settings.jobs_durable)
        assert (consumer.config.metadata or {})[OWNER_KEY] == ours


async def test_a_database_whose_installation_row_was_deleted_is_refused_clearly(
    settings: Settings,
) -> None:
    engine = make_engine(settings)
    try:
        await init_db(engine)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM installation"))
        with pytest.raises(SchemaError, match="no installation row"):
            await installation_id(engine)
    finally:
        await engine.dispose()


async def test_another_database_on_the_same_queue_names_is_refused_in_one_line(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env_a = isolated_env(nats_server.url, tmp_path)
    a = Settings(**env_a)  # type: ignore[arg-type]
    b = Settings(**same_queue_other_database(env_a, tmp_path / "b.db"))  # type: ignore[arg-type]
    owner = await db_installation(a)
    async with running_worker(a, worker=False):
        intruder = make_broker(b, name="intruder")
        register_tasks(intruder)
        with pytest.raises(NotOurQueueError) as refused:
            await intruder.startup()
        await intruder.shutdown()
    message = str(refused.value)
    assert "\n" not in message
    assert f"job stream {a.jobs_stream}" in message and owner in message
    assert "FLEETPROBE_INSTANCE" in message and "NATS_URL" in message
    # Nothing of A's was rewritten by B.
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        assert ((await js.stream_info(a.jobs_stream)).config.metadata or {})[OWNER_KEY] == owner
        consumer = await js.consumer_info(a.jobs_stream, a.jobs_durable)
        assert (consumer.config.metadata or {})[OWNER_KEY] == owner
    finally:
        await nc.close()


async def test_another_database_is_refused_the_leader_bucket(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env_a = isolated_env(nats_server.url, tmp_path, LEADER_BUCKET=f"lb_{tmp_path.name[-8:]}")
    a = Settings(**env_a)  # type: ignore[arg-type]
    b = Settings(**same_queue_other_database(env_a, tmp_path / "b.db"))  # type: ignore[arg-type]
    ours, theirs = await db_installation(a), await db_installation(b)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        lease = await owned_lease(js, a, ours, "a")
        assert await lease.refresh()  # creates the bucket with A's description
        await owned_lease(js, a, ours, "a-again")  # the same installation: fine
        with pytest.raises(NotOurQueueError, match=f"key-value bucket {a.leader_bucket}"):
            await claim_bucket(js, b.leader_bucket, theirs, b.nats_url)
    finally:
        await nc.close()


async def test_a_stream_made_before_installation_ids_is_claimed_by_the_first_process(
    settings: Settings,
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().add_stream(stream_config(settings))  # as an older fleetprobe did
        async with running_worker(settings, worker=False) as broker:
            info = await broker.js.stream_info(settings.jobs_stream)
            assert (info.config.metadata or {})[OWNER_KEY] == await db_installation(settings)
    finally:
        await nc.close()


async def add_device(settings: Settings, device_id: int, address: str) -> None:
    engine = make_engine(settings)
    await init_db(engine)
    async with session_factory(engine)() as session:
        session.add(Device(id=device_id, name=f"d{device_id}", address=address))
        await session.commit()
    await engine.dispose()


async def checks_by_device(settings: Settings) -> dict[int, int]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(col(CheckResult.device_id), func.count()).group_by(
                    col(CheckResult.device_id)
                )
            )
            return {int(device): int(n) for device, n in rows.all()}
    finally:
        await engine.dispose()


async def test_two_named_instances_on_one_server_each_run_only_their_own_jobs(
    nats_server: EmbeddedNats, tmp_path: Path, http_target: str
) -> None:
    """Same base names (as two default installs would have), different instance names."""
    base = isolated_env(nats_server.url, tmp_path)
    a, b = (
        Settings(
            **same_queue_other_database(base, tmp_path / f"{name}.db"),  # type: ignore[arg-type]
            FLEETPROBE_INSTANCE=name,
        )
        for name in ("a", "b")
    )
    assert a.jobs_stream != b.jobs_stream and a.jobs_subject != b.jobs_subject
    await add_device(a, 1, http_target)
    await add_device(b, 5, http_target)
    n = 30

    def jobs(device_id: int, tag: str) -> list[ProbeJob]:
        return [
            ProbeJob(device_id=device_id, address=http_target, timeout=2, run_key=f"{tag}:{i}")
            for i in range(n)
        ]

    async with running_worker(a) as broker_a, running_worker(b) as broker_b:
        await asyncio.gather(
            kick_probes(broker_a, jobs(1, "a")), kick_probes(broker_b, jobs(5, "b"))
        )

        async def both_done() -> bool:
            return (
                sum((await checks_by_device(a)).values()) >= n
                and sum((await checks_by_device(b)).values()) >= n
            )

        await wait_for(both_done, timeout=60, what="both instances' probes stored")
    # Each database holds its own device's results, all of them, and nothing else.
    assert await checks_by_device(a) == {1: n}
    assert await checks_by_device(b) == {5: n}


@pytest.mark.slow
def test_processes_of_another_database_refuse_the_queue_in_one_line(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env_a = isolated_env(nats_server.url, tmp_path)
    a = Settings(**env_a)  # type: ignore[arg-type]
    owner = asyncio.run(db_installation(a))

    async def claim() -> None:
        async with running_worker(a, worker=False):
            pass

    asyncio.run(claim())  # the queue is A's from now on
    env_b = same_queue_other_database(env_a, tmp_path / "b.db")
    scheduler = scheduler_cmd(env_b, tmp_path / "b-scheduler.log", "--no-web")
    # As the README runs it: no --max-fails, so taskiq alone would start a refusing child
    # again every second or two, for ever.
    worker = taskiq_worker(env_b, tmp_path / "b-worker.log", "--workers", "2")
    try:
        codes = [proc.popen.wait(timeout=90) for proc in (scheduler, worker)]
    finally:
        scheduler.stop()
        worker.stop()
    for proc in (scheduler, worker):
        output = proc.output()
        assert "Traceback" not in output, output
        refusals = [line for line in output.splitlines() if "belongs to another" in line]
        assert refusals and all(owner in line for line in refusals), output
        assert "FLEETPROBE_INSTANCE" in refusals[0]
    assert codes[0] == 3
    # The taskiq worker stopped by itself (its parent exits 0 on the SIGTERM its child
    # sent): one refusal per child at most, not a refusal every second.
    output = worker.output()
    assert codes[1] == 0, output
    assert sum("belongs to another" in line for line in output.splitlines()) <= 2, output
    assert "stopping the taskiq worker" in output


async def test_a_client_broker_reads_the_installation_from_the_engine_its_host_lends(
    settings: Settings, tmp_path: Path
) -> None:
    # The host's engine (python scheduler.py) is on another file than DATABASE_URL: the
    # installation comes from the lent engine, not from a second one opened at start.
    host_db = f"sqlite+aiosqlite:///{tmp_path / 'host.db'}"
    host = make_engine(Settings(DATABASE_URL=host_db))  # type: ignore[call-arg]
    try:
        await init_db(host)
        ours = await installation_id(host)
        assert ours != await db_installation(settings)
        broker = make_broker(settings, name="test")
        broker.engine = host
        await broker.startup()
        try:
            assert broker.installation_id == ours
        finally:
            await broker.shutdown()
    finally:
        await host.dispose()
