"""``taskiq worker worker:broker``: more workers, on any host that reaches NATS and the
database.  Importing this module builds the broker object only; connections open in its
startup hooks."""

from __future__ import annotations

from pydantic import ValidationError
from taskiq import TaskiqEvents, TaskiqState

from core import garbage_collector
from core.interrupt import stop_taskiq_parent
from core.logs import setup_logging
from core.settings import Settings, settings_error
from jobs.queue.broker import make_broker
from jobs.worker import register_tasks

try:
    settings = Settings()
except ValidationError as exc:  # one line, not an import traceback in every child
    # ... and not every second for ever: taskiq would start the child again and again.
    stop_taskiq_parent()
    raise SystemExit(f"invalid settings: {settings_error(exc)}") from None
setup_logging(settings.log_level)
garbage_collector.tune(settings.gc_thresholds)
broker = make_broker(settings, name="fleetprobe-worker")
broker.exit_on_refusal = True  # one line and exit code 3, not a traceback (jobs.queue.broker)
# Waiting for NATS at start (see README "What happens with no NATS"), SIGINT/SIGTERM
# still stop the child.
broker.exit_on_signal = True
register_tasks(broker)


async def _started(_state: TaskiqState) -> None:
    garbage_collector.freeze_start_up()  # after the runtime's own start-up hook


broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, _started)
