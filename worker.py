"""``taskiq worker worker:broker``: more workers, on any host that reaches NATS and the
database.  Importing this module builds the broker object only; connections open in its
startup hooks."""

from __future__ import annotations

from core.logs import setup_logging
from core.settings import Settings
from jobs.queue.broker import make_broker
from jobs.worker import register_tasks

settings = Settings()
setup_logging(settings.log_level)
broker = make_broker(settings, name="fleetprobe-worker")
register_tasks(broker)
