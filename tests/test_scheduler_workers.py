"""How many worker processes `python scheduler.py` starts, from its flags and WORKERS
(pure: the argument parser and the rule), and the command each one runs."""

from __future__ import annotations

import pytest

import scheduler
from core.settings import Settings, auto_workers, usable_cpus
from jobs.queue.receiver import RECEIVER


@pytest.mark.parametrize(
    ("argv", "workers_setting", "expected"),
    [
        ([], "2", 2),  # the setting
        ([], "0", 0),
        (["--workers", "3"], "1", 3),  # the flag wins
        (["--workers", "0"], "auto", 0),
        (["--no-worker"], "2", 0),  # workers run elsewhere: none here
        (["--no-worker", "--workers", "2"], "0", 2),  # unless asked on the command line
    ],
)
def test_worker_count(argv: list[str], workers_setting: str, expected: int) -> None:
    settings = Settings(WORKERS=workers_setting)  # type: ignore[call-arg]
    assert scheduler.worker_count(scheduler.parse_args(argv), settings) == expected


def test_auto_is_the_usable_cores_less_one() -> None:
    settings = Settings(WORKERS="auto")  # type: ignore[call-arg]
    args = scheduler.parse_args([])
    assert scheduler.worker_count(args, settings) == auto_workers(usable_cpus())


@pytest.mark.parametrize("bad", ["-1", "x", "65", "1.5"])
def test_a_bad_workers_flag_is_refused_naming_it(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        scheduler.parse_args(["--workers", bad])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_each_worker_process_runs_taskiq_worker_with_the_in_process_limits() -> None:
    settings = Settings(WORKER_CONCURRENCY="150", SHUTDOWN_GRACE_SECONDS="4")  # type: ignore[call-arg]
    argv = scheduler.worker_argv(settings)
    assert argv[1:5] == ["-m", "taskiq", "worker", "worker:broker"]
    flags = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert flags["--workers"] == "1"
    assert flags["--receiver"] == RECEIVER
    assert flags["--max-async-tasks"] == "150"
    assert flags["--wait-tasks-timeout"] == "4"
