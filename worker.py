"""``taskiq worker worker:broker``: more workers, on any host that reaches NATS and the
database.  Importing this module builds the broker object only; connections open in its
startup hooks."""

from __future__ import annotations

from core.logs import setup_logging
from core.settings import Settings
from jobs.probe.task import register_tasks
from jobs.queue.broker import make_broker

settings = Settings()
setup_logging(settings.log_level)
broker = make_broker(settings, name="fleetprobe-worker")
register_tasks(broker)
