"""Every check kind through the worker's probe task (jobs.probe.task over a real
WorkerRuntime): the address chooses the probe, the conditions judge it, the row stores
outcome, verdicts and the certificate's expiry, ``check.created`` says the outcome.
Real servers only: the suite's HTTP target, local TCP/TLS listeners with certificates
made here, a local DNS responder, the reference recorder on the suite's nats-server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from jobs.probe.job import ProbeJob
from jobs.probe.task import probe_device
from jobs.queue.broker import PROBE_TASK
from jobs.queue.kick import kick_keyed
from jobs.worker import WorkerRuntime
from storage import repo
from storage.db import session_factory
from storage.models import CheckResult, Device
from tests.helpers import collect_events, running_worker, wait_for
from tests.jobs.probe.kinds.servers import SelfSigned, dns_server, http_ok, listening, self_signed
from tests.recorder_helpers import running_simulator


@pytest.fixture
async def runtime(settings: Settings, engine: AsyncEngine) -> AsyncIterator[WorkerRuntime]:
    rt = await WorkerRuntime.open(settings, engine=engine)
    try:
        yield rt
    finally:
        await rt.close()


async def add_device(engine: AsyncEngine, address: str) -> int:
    async with session_factory(engine)() as session:
        device = await repo.create_device(session, name="d", address=address)
        assert device.id is not None
        return device.id


async def probe(
    runtime: WorkerRuntime, engine: AsyncEngine, address: str, **fields: Any
) -> CheckResult:
    """Probe a new device at ``address`` through the task; the row it stored."""
    device_id = await add_device(engine, address)
    job = ProbeJob(
        device_id=device_id,
        address=address,
        timeout=fields.pop("timeout", 3),
        run_key=f"test:{uuid.uuid4().hex}",
        **fields,
    )
    await probe_device(job, runtime)
    async with session_factory(engine)() as session:
        row = await repo.get_check_by_run_key(session, job.run_key)
    assert row is not None
    return row


def verdict(row: CheckResult, condition: str) -> dict[str, Any]:
    assert row.verdicts is not None
    return next(v for v in row.verdicts if v["condition"] == condition)


async def test_a_tcp_device_is_up_while_its_port_listens_and_down_once_closed(
    runtime: WorkerRuntime, engine: AsyncEngine
) -> None:
    async with listening() as port:
        row = await probe(runtime, engine, f"tcp://127.0.0.1:{port}")
    assert (row.outcome, row.status_up, row.error_kind) == ("up", True, None)
    assert row.verdicts == [{"condition": "[CONNECTED] == true", "success": True, "actual": "true"}]
    assert row.latency_ms is not None and row.status_code is None
    closed = await probe(runtime, engine, f"tcp://127.0.0.1:{port}")
    assert (closed.outcome, closed.status_up, closed.error_kind) == ("down", False, "refused")
    assert verdict(closed, "[CONNECTED] == true")["success"] is False


async def test_a_dns_device_reads_the_rcode_and_answers_of_a_local_responder(
    runtime: WorkerRuntime, engine: AsyncEngine
) -> None:
    async with dns_server({"app.test.": ["10.0.0.7"]}) as (port, responder):
        server = f"server=127.0.0.1:{port}"
        row = await probe(
            runtime,
            engine,
            f"dns://app.test?type=A&{server}",
            conditions=["[DNS_RCODE] == NOERROR", "[BODY] == 10.0.0.7"],
        )
        missing = await probe(runtime, engine, f"dns://nope.test?{server}")
    assert (row.outcome, row.status_up) == ("up", True)
    assert verdict(row, "[BODY] == 10.0.0.7") == {
        "condition": "[BODY] == 10.0.0.7",
        "success": True,
        "actual": "10.0.0.7",
    }
    assert (missing.outcome, missing.error_kind) == ("down", "condition")
    assert verdict(missing, "[DNS_RCODE] == NOERROR")["actual"] == "NXDOMAIN"
    assert responder.queries == ["app.test. A", "nope.test. A"]


async def test_a_tls_device_whose_certificate_expires_in_two_days_fails_72h(
    runtime: WorkerRuntime, engine: AsyncEngine, tmp_path: Path
) -> None:
    cert = self_signed(timedelta(days=2))
    async with listening(ssl_context=cert.server_context(tmp_path)) as port:
        row = await probe(
            runtime,
            engine,
            f"tls://127.0.0.1:{port}",
            verify_tls=False,  # self-signed: the handshake is what is checked
            conditions=["[CONNECTED] == true", "[CERTIFICATE_EXPIRATION] > 72h"],
        )
    assert (row.outcome, row.status_up, row.error_kind) == ("down", False, "condition")
    shown = verdict(row, "[CERTIFICATE_EXPIRATION] > 72h")
    assert shown["success"] is False
    assert shown["actual"].startswith("47h59m"), shown  # Go's duration text, as Gatus
    assert verdict(row, "[CONNECTED] == true")["success"] is True
    assert row.certificate_expires_at == cert.not_after
    assert row.certificate_subject == "O=fleetprobe tests,CN=localhost"
    assert row.error is not None and "[CERTIFICATE_EXPIRATION] > 72h" in row.error


@pytest.fixture
def https_cert() -> SelfSigned:
    return self_signed(timedelta(days=30))


async def test_an_https_device_records_when_its_certificate_expires(
    runtime: WorkerRuntime, engine: AsyncEngine, tmp_path: Path, https_cert: SelfSigned
) -> None:
    async with listening(http_ok, ssl_context=https_cert.server_context(tmp_path)) as port:
        address = f"https://127.0.0.1:{port}/"
        row = await probe(
            runtime,
            engine,
            address,
            verify_tls=False,
            conditions=["[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 7d"],
        )
        again = await probe(runtime, engine, address, verify_tls=False)
        verified = await probe(runtime, engine, address)  # verify on: not trusted
    assert (row.outcome, row.status_code) == ("up", 200)
    assert row.certificate_expires_at == https_cert.not_after
    assert verdict(row, "[CERTIFICATE_EXPIRATION] > 7d")["success"] is True
    assert again.certificate_expires_at == https_cert.not_after
    subject = "O=fleetprobe tests,CN=localhost"
    assert row.certificate_subject == again.certificate_subject == subject  # again: cached
    # one handshake for the certificate, however many checks of that host:port
    assert runtime.check_tools.certificates.handshakes == 1
    assert (verified.outcome, verified.error_kind) == ("down", "tls")


async def test_an_http_device_judges_its_json_body(
    runtime: WorkerRuntime, engine: AsyncEngine, http_target: str
) -> None:
    conditions = ["[STATUS] == 200", "[BODY].status == UP", "len([BODY].checks) == 2"]
    up = await probe(runtime, engine, f"{http_target}/json", conditions=conditions)
    down = await probe(runtime, engine, f"{http_target}/json?status=DOWN", conditions=conditions)
    assert (up.outcome, up.status_up) == ("up", True)
    assert all(v["success"] for v in up.verdicts or ())
    assert (down.outcome, down.status_up, down.status_code) == ("down", False, 200)
    assert verdict(down, "[BODY].status == UP") == {
        "condition": "[BODY].status == UP",
        "success": False,
        "actual": "DOWN",
    }
    assert down.error_kind == "condition"


async def test_degraded_when_makes_a_passing_check_degraded_and_still_status_up(
    runtime: WorkerRuntime, engine: AsyncEngine, http_target: str, settings: Settings
) -> None:
    async with collect_events(settings) as events:
        row = await probe(
            runtime, engine, f"{http_target}/ok", degraded_when=["[RESPONSE_TIME] > 0"]
        )

        async def announced() -> bool:
            return any(_is_check_of(e, row.run_key) for e in events)

        await wait_for(announced, what="check.created")
    assert (row.outcome, row.status_up, row.error_kind) == ("degraded", True, None)
    assert row.degraded_verdicts is not None and row.degraded_verdicts[0]["success"] is True
    assert row.verdicts == [{"condition": "[STATUS] < 500", "success": True, "actual": "200"}]
    # (the first result also changes the state: a device.state_changed carries the run key)
    payload = next(e["payload"] for e in events if _is_check_of(e, row.run_key))
    assert (payload["outcome"], payload["status_up"], payload["error_kind"]) == (
        "degraded",
        True,
        None,
    )


async def test_a_post_with_body_and_headers_reaches_the_target_as_sent(
    runtime: WorkerRuntime, engine: AsyncEngine, http_target: str
) -> None:
    row = await probe(
        runtime,
        engine,
        f"{http_target}/echo",
        method="POST",
        headers={"X-Probe": "fleet", "Content-Type": "application/json"},
        body='{"ping": 1}',
        conditions=[
            "[BODY].method == POST",
            "[BODY].headers.x-probe == fleet",
            "[BODY].headers.content-type == application/json",
            '[BODY].body == pat({"ping": 1})',
        ],
    )
    assert row.outcome == "up", row.verdicts


async def test_follow_redirects_false_stores_the_redirect_itself(
    runtime: WorkerRuntime, engine: AsyncEngine, http_target: str
) -> None:
    kept = await probe(
        runtime,
        engine,
        f"{http_target}/moved",
        follow_redirects=False,
        conditions=["[STATUS] == 301"],
    )
    followed = await probe(runtime, engine, f"{http_target}/moved")
    assert (kept.status_code, kept.outcome) == (301, "up")
    assert (followed.status_code, followed.outcome) == (200, "up")


async def test_a_server_error_is_down_with_its_status_named(
    runtime: WorkerRuntime, engine: AsyncEngine, http_target: str
) -> None:
    row = await probe(runtime, engine, f"{http_target}/fail")
    assert (row.outcome, row.status_up, row.status_code) == ("down", False, 500)
    assert row.error_kind == "http_status"
    assert row.error is not None and row.error.startswith("HTTP 500")


async def test_a_recorder_device_asks_the_reference_recorder(
    runtime: WorkerRuntime, engine: AsyncEngine, settings: Settings
) -> None:
    async with running_simulator(settings):
        stopped = await probe(runtime, engine, "recorder://cam1")
        not_recording = await probe(
            runtime, engine, "recorder://cam1", conditions=["[APP_STATUS] == started"]
        )
    gone = await probe(runtime, engine, "recorder://cam1")
    assert (stopped.outcome, stopped.status_up) == ("up", True)
    assert verdict(stopped, "[MSG_STATUS] == success")["actual"] == "success"
    assert (not_recording.outcome, not_recording.error_kind) == ("down", "condition")
    assert verdict(not_recording, "[APP_STATUS] == started")["actual"] == "stopped"
    assert (gone.outcome, gone.error_kind) == ("down", "no_responder")


class OldProbeJob(BaseModel):
    """The probe message as schedulers sent it before check settings existed."""

    device_id: int
    address: str
    timeout: float
    run_key: str
    slot_at: None = None
    source: str = "schedule"


async def test_an_old_format_message_still_runs_with_the_defaults(
    settings: Settings, engine: AsyncEngine, http_target: str
) -> None:
    device_id = await add_device(engine, f"{http_target}/fail")
    old = OldProbeJob(
        device_id=device_id, address=f"{http_target}/fail", timeout=2, run_key="old:1"
    )
    async with running_worker(settings) as broker:
        await kick_keyed(broker, PROBE_TASK, old, old.run_key)

        async def stored() -> bool:
            async with session_factory(engine)() as session:
                return await repo.get_check_by_run_key(session, "old:1") is not None

        await wait_for(stored, what="the old message's result")
    async with session_factory(engine)() as session:
        row = await repo.get_check_by_run_key(session, "old:1")
    assert row is not None
    assert (row.outcome, row.status_code, row.error_kind) == ("down", 500, "http_status")
    assert row.verdicts == [{"condition": "[STATUS] < 500", "success": False, "actual": "500"}]


def test_a_message_leaves_out_the_check_settings_at_their_default() -> None:
    plain = ProbeJob(device_id=1, address="tcp://a:1", timeout=1, run_key="k")
    assert set(plain.model_dump(mode="json")) == {
        "device_id",
        "address",
        "timeout",
        "run_key",
        "slot_at",
        "source",
    }
    posted = plain.model_copy(update={"method": "POST", "verify_tls": False})
    dumped = posted.model_dump(mode="json")
    assert (dumped["method"], dumped["verify_tls"]) == ("POST", False)
    assert ProbeJob.model_validate(json.loads(json.dumps(dumped))) == posted


async def test_the_scheduler_spec_carries_the_device_check_settings(
    settings: Settings, engine: AsyncEngine
) -> None:
    from jobs.probe.job import load_specs, scheduled_job
    from storage.types import utcnow

    async with session_factory(engine)() as session:
        device = Device(
            name="d",
            address="https://a.example/",
            method="HEAD",
            headers={"A": "b"},
            conditions=["[STATUS] == 200"],
            verify_tls=False,
        )
        session.add(device)
        await session.commit()
        await session.refresh(device)
    assert device.id is not None
    spec = (await load_specs(engine, settings))[device.id]
    job = scheduled_job(spec, utcnow())
    assert (job.method, job.headers, job.conditions, job.verify_tls) == (
        "HEAD",
        {"A": "b"},
        ["[STATUS] == 200"],
        False,
    )
    assert job.follow_redirects is True and job.degraded_when is None


async def test_under_the_httpx_engine_the_certificate_comes_with_the_response(
    settings: Settings, engine: AsyncEngine, tmp_path: Path, https_cert: SelfSigned
) -> None:
    stock = settings.model_copy(update={"http_engine": "httpx"})
    rt = await WorkerRuntime.open(stock, engine=engine)
    try:
        async with listening(http_ok, ssl_context=https_cert.server_context(tmp_path)) as port:
            row = await probe(rt, engine, f"https://127.0.0.1:{port}/", verify_tls=False)
        assert (row.outcome, row.certificate_expires_at) == ("up", https_cert.not_after)
        assert row.certificate_subject == "O=fleetprobe tests,CN=localhost"
        assert rt.check_tools.certificates.handshakes == 0  # no handshake of its own
    finally:
        await rt.close()


def _is_check_of(event: dict[str, Any], run_key: str) -> bool:
    return bool(event["type"] == "check.created" and event["payload"]["run_key"] == run_key)
