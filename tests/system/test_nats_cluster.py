"""A NATS cluster URL list (``nats://a:4222,nats://b:4223,...``, as every NATS client names
a cluster) works everywhere NATS_URL is read: scheduler.py, taskiq workers, the recorder
CLI and the simulator; here against three nodes from the wheel, routed on loopback."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from core.natsserver import EmbeddedNats, free_port, start_nats_server
from core.settings import Settings
from tests.conftest import isolated_env, subprocess_env
from tests.helpers import add_devices, stored_checks, wait_for
from tests.processes import ROOT, Proc, running, scheduler_cmd, taskiq_worker

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def three_node_cluster(tmp_path: Path) -> Iterator[list[EmbeddedNats]]:
    routes = [free_port() for _ in range(3)]
    nodes: list[EmbeddedNats] = []
    try:
        for i, route in enumerate(routes):
            others = ",".join(f"nats://127.0.0.1:{r}" for r in routes if r != route)
            args = ["--server_name", f"n{i}", "--cluster_name", "fleetprobe-test"]
            args += ["--cluster", f"nats://127.0.0.1:{route}", "--routes", others]
            store = tmp_path / f"node{i}"
            log = tmp_path / f"node{i}.log"
            nodes.append(
                start_nats_server("127.0.0.1", free_port(), store, log_file=log, extra_args=args)
            )
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def jetstream_ready(url: str) -> bool:
    """The cluster elected its JetStream meta leader (streams can be created)."""
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return False
    try:
        await nc.jetstream().account_info()
    except Exception:
        return False
    finally:
        await nc.close()
    return True


async def test_a_cluster_list_works_for_scheduler_workers_recorder_cli_and_simulator(
    tmp_path: Path, http_target: str
) -> None:
    with three_node_cluster(tmp_path) as nodes:
        cluster = ",".join(node.url for node in nodes)
        await wait_for(lambda: jetstream_ready(nodes[0].url), timeout=30, what="JetStream")
        env = isolated_env(cluster, tmp_path)
        settings = Settings(**env)  # type: ignore[arg-type]
        assert len(settings.nats_servers) == 3
        await add_devices(settings, f"{http_target}/ok", 2, interval=1)

        # The scheduler kicks (no worker of its own); a taskiq worker runs the probes.
        scheduler = scheduler_cmd(env, tmp_path / "scheduler.log", "--no-web", "--no-worker")
        worker = taskiq_worker(env, tmp_path / "worker.log")
        simulator = Proc(
            [sys.executable, "-m", "jobs.recorder.simulator"], env, tmp_path / "simulator.log"
        )
        with running(scheduler, worker, simulator):

            async def stored() -> bool:
                return len({r.device_id for r in await stored_checks(settings)}) == 2

            await wait_for(stored, timeout=60, what="a stored probe per device")

            async def simulator_up() -> bool:
                return "recorder simulator listening" in simulator.output()

            await wait_for(simulator_up, timeout=30, what="the simulator")
            cli = subprocess.run(
                [sys.executable, "-m", "jobs.recorder", "status", "--task-id", "cam1"],
                check=False,
                cwd=ROOT,
                env=subprocess_env(env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode == 0, cli.stderr
            assert '"msg_status":"success"' in cli.stdout
        for proc in (scheduler, worker, simulator):
            assert proc.popen.returncode == 0, proc.output()[-3000:]
            assert "Traceback" not in proc.output()
