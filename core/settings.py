"""One settings object, read from the environment once.

Names follow the user's documents (``NATS_URL``, ``NATS_TIMEOUT``, ``NATS_SUBJECT``,
``TASK_ID``, ``LOG_LEVEL``, ``DATABASE_URL``, ``MONITOR_PERIOD_SECONDS``); the rest are
fleetprobe's own.  Example::

    >>> Settings(MONITOR_PERIOD_SECONDS="60").monitor_period_seconds
    60
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.hosts import host_pattern, parse_origin
from core.natsurl import parse_servers

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
HttpEngine = Literal["aiohttp", "httpx"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
SqliteSynchronous = Literal["normal", "full"]
# JetStream's sync_interval: "always" (fsync every write) or a Go duration ("2m", "10s").
SYNC_INTERVAL_PATTERN = r"^(always|default|[0-9]+(\.[0-9]+)?(ms|s|m|h))$"

# Bounds that the API and the queue rely on: a task may never outlive ack_wait.
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 120.0


class Settings(BaseSettings):
    """Typed, validated configuration; pass it explicitly into every factory."""

    model_config = SettingsConfigDict(
        env_file=None, case_sensitive=False, extra="ignore", populate_by_name=True
    )

    # NATS: queue, events and recorder commands.
    nats_url: str = Field("nats://127.0.0.1:4222", alias="NATS_URL")
    nats_timeout: float = Field(2.0, alias="NATS_TIMEOUT", gt=0, le=300)
    nats_subject: str = Field("rec.control", alias="NATS_SUBJECT", min_length=1)
    events_subject: str = Field("items.updates", alias="EVENTS_SUBJECT", min_length=1)
    task_id: str = Field("task01", alias="TASK_ID", min_length=1)
    embedded_nats: bool = Field(True, alias="EMBEDDED_NATS")
    # Credentials: user/password or a token go in NATS_URL (nats://user:pass@host:4222,
    # nats://token@host:4222); a creds file (JWT + nkey) and TLS files go here.
    nats_creds_file: str | None = Field(None, alias="NATS_CREDS")
    nats_tls_ca: str | None = Field(None, alias="NATS_TLS_CA")
    nats_tls_cert: str | None = Field(None, alias="NATS_TLS_CERT")
    nats_tls_key: str | None = Field(None, alias="NATS_TLS_KEY")
    nats_data_dir: str = Field("./data", alias="NATS_DATA_DIR")
    # The embedded server's JetStream fsync: "default" leaves nats-server's own (every
    # 2 minutes), "always" syncs each write, or a duration (docs/reliability.md).
    nats_sync_interval: str = Field(
        "default", alias="NATS_SYNC_INTERVAL", pattern=SYNC_INTERVAL_PATTERN
    )

    # The job queue (JetStream).  FLEETPROBE_INSTANCE, when set, prefixes the stream, the
    # job subject, the durable, the metrics subject and the leader bucket (the properties
    # of those names, derived from the *_base fields as given), so several installations
    # share one NATS server.
    fleetprobe_instance: str = Field("", alias="FLEETPROBE_INSTANCE")
    jobs_subject_base: str = Field("fleetprobe.jobs", alias="JOBS_SUBJECT")
    jobs_stream_base: str = Field("FLEETPROBE_JOBS", alias="JOBS_STREAM")
    jobs_durable_base: str = Field("fleetprobe-workers", alias="JOBS_DURABLE")
    jobs_max_deliver: int = Field(5, alias="JOBS_MAX_DELIVER", ge=1, le=100)
    jobs_duplicate_window_seconds: float = Field(300.0, alias="JOBS_DUPLICATE_WINDOW_SECONDS", gt=0)
    ack_wait_margin_seconds: float = Field(30.0, alias="ACK_WAIT_MARGIN_SECONDS", ge=5)
    # Explicit ack_wait; refused when a task could outlive it (it would run twice).
    ack_wait_override: float | None = Field(None, alias="ACK_WAIT_SECONDS", gt=0)
    worker_concurrency: int = Field(200, alias="WORKER_CONCURRENCY", ge=1, le=10_000)
    # `taskiq worker` processes python scheduler.py runs beside its in-process worker:
    # a number, or `auto` (the cores less one, at most MAX_AUTO_WORKERS; chosen by
    # measurement: docs/performance.md "Both cores by default").
    workers: int | Literal["auto"] = Field("auto", alias="WORKERS")
    # On SIGINT/SIGTERM, running tasks get this long to finish before they are cancelled
    # (unacknowledged, so redelivered).
    shutdown_grace_seconds: float = Field(8.0, alias="SHUTDOWN_GRACE_SECONDS", ge=0, le=300)
    # 100 / 20 ms: fewer pulls and transactions per probe (docs/performance.md).
    fetch_batch: int = Field(100, alias="FETCH_BATCH", ge=1, le=1000)

    # Storage.
    database_url: str = Field("sqlite+aiosqlite:///./monitoring.db", alias="DATABASE_URL")
    sqlite_busy_timeout_ms: int = Field(30_000, alias="SQLITE_BUSY_TIMEOUT_MS", ge=0)
    # PRAGMA synchronous in WAL mode: "full" fsyncs the WAL at every commit, so a stored
    # (and acknowledged) result survives a power loss; "normal" survives a process crash
    # only (docs/reliability.md has the trade and the figures).
    sqlite_synchronous: SqliteSynchronous = Field("full", alias="SQLITE_SYNCHRONOUS")
    result_batch_size: int = Field(200, alias="RESULT_BATCH_SIZE", ge=1, le=10_000)
    # A batch waits this long for more rows: with several worker processes on one SQLite
    # file, 50 ms (fewer, larger commits) gave +25-40 % probes/s over 20 ms; it adds at
    # most that much to a result's latency (docs/performance.md).
    result_flush_ms: float = Field(50.0, alias="RESULT_FLUSH_MS", ge=0, le=1000)
    # Retention, run by the leading scheduler every RETENTION_INTERVAL_SECONDS: raw results
    # older than RETENTION_DAYS and hourly/daily rollups older than ROLLUP_RETENTION_DAYS are
    # deleted, RETENTION_BATCH rows per transaction at most; 0 days keeps them for ever.
    # State changes are kept (storage/retention.py).
    retention_days: int = Field(30, alias="RETENTION_DAYS", ge=0, le=100_000)
    rollup_retention_days: int = Field(400, alias="ROLLUP_RETENTION_DAYS", ge=0, le=100_000)
    retention_interval_seconds: float = Field(
        3600.0, alias="RETENTION_INTERVAL_SECONDS", ge=1, le=7 * 24 * 3600
    )
    retention_batch: int = Field(2000, alias="RETENTION_BATCH", ge=1, le=10_000)

    # Probing and scheduling.
    monitor_period_seconds: int = Field(
        3600, alias="MONITOR_PERIOD_SECONDS", ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS
    )
    probe_timeout_seconds: float = Field(
        10.0, alias="PROBE_TIMEOUT_SECONDS", ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    probe_max_timeout_seconds: float = Field(
        60.0, alias="PROBE_MAX_TIMEOUT_SECONDS", ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    probe_body_max_bytes: int = Field(64 * 1024, alias="PROBE_BODY_MAX_BYTES", ge=0)
    http_engine: HttpEngine = Field("aiohttp", alias="HTTP_ENGINE")
    # The shortest reminder_every_minutes a device may set (other than 0, no reminders).
    reminder_min_minutes: int = Field(5, alias="REMINDER_MIN_MINUTES", ge=1, le=7 * 24 * 60)
    http_max_connections: int = Field(1000, alias="HTTP_MAX_CONNECTIONS", ge=1)
    # scheduler.py's event loop; "auto": uvloop where it is installed (a dependency on
    # Linux and macOS; +20-25 % probes/s here, docs/performance.md).  `taskiq worker`
    # picks uvloop by itself when installed.
    event_loop: EventLoop = Field("auto", alias="EVENT_LOOP")
    misfire_grace_seconds: int | None = Field(None, alias="MISFIRE_GRACE_SECONDS", ge=1)
    scheduler_resync_seconds: float = Field(60.0, alias="SCHEDULER_RESYNC_SECONDS", gt=0)
    # Only the holder of this lease (a NATS key-value entry) kicks scheduled jobs.
    leader_lease_seconds: float = Field(10.0, alias="LEADER_LEASE_SECONDS", ge=1, le=3600)
    leader_bucket_base: str = Field(
        "fleetprobe_leader", alias="LEADER_BUCKET", pattern=r"^[a-zA-Z0-9_-]+$"
    )

    # Web.
    web_host: str = Field("127.0.0.1", alias="WEB_HOST")
    web_port: int = Field(8002, alias="WEB_PORT", ge=0, le=65535)
    tick_seconds: float = Field(30.0, alias="TICK_SECONDS", gt=0)
    # permessage-deflate on /ws/items (per client and event: ~45 us of CPU); for clients
    # behind slow links.
    ws_compression: bool = Field(False, alias="WS_COMPRESSION")
    # Events queued for one WebSocket client at most (JSON bytes); a client that falls
    # further behind is dropped.  4 MiB: ~10,000 check.created, seconds at full load.
    ws_client_buffer_bytes: int = Field(
        4 * 1024 * 1024, alias="WS_CLIENT_BUFFER_BYTES", ge=1024, le=1024**3
    )
    # Set: every REST route but /health and every WebSocket need it (web/auth.py).
    api_token: SecretStr | None = Field(None, alias="API_TOKEN")
    # Host names clients may use (comma-separated; "*.example.org", "*" for any).  Unset:
    # localhost, 127.0.0.1, [::1] and the bind host when it is not a wildcard (web/guards.py).
    allowed_hosts: Annotated[tuple[str, ...] | None, NoDecode] = Field(None, alias="ALLOWED_HOSTS")
    # Browser origins besides the server's own that may open /ws/items or send writes
    # (comma-separated "https://dash.example.org").
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field((), alias="ALLOWED_ORIGINS")

    # GET /metrics without the token even when API_TOKEN is set (a scraper on a trusted
    # network); the work counters of workers reach the web process on METRICS_SUBJECT
    # every METRICS_PUSH_SECONDS (jobs/metrics.py).
    metrics_public: bool = Field(False, alias="METRICS_PUBLIC")
    metrics_subject_base: str = Field("fleetprobe.metrics", alias="METRICS_SUBJECT", min_length=1)
    metrics_push_seconds: float = Field(10.0, alias="METRICS_PUSH_SECONDS", gt=0, le=300)
    # Alerts (README "Alerts").  A delivery is tried 1 + len(delays) times, waiting each
    # delay in turn (seconds, comma-separated): by default 5 tries over ~10 minutes.
    alert_retry_delays_seconds: Annotated[tuple[float, ...], NoDecode] = Field(
        (30.0, 60.0, 120.0, 390.0), alias="ALERT_RETRY_DELAYS_SECONDS"
    )
    # One delivery attempt (the receiver's answer, or Apprise's send) at most.
    alert_timeout_seconds: float = Field(10.0, alias="ALERT_TIMEOUT_SECONDS", gt=0, le=60)
    # How often the leading scheduler looks for reminders due and maintenance windows
    # starting or ending.
    alert_sweep_seconds: float = Field(30.0, alias="ALERT_SWEEP_SECONDS", gt=0, le=3600)
    # Where a message's link points ("https://monitor.example.org"); unset: the web port.
    alert_link_base: str = Field("", alias="ALERT_LINK_BASE")

    log_level: LogLevel = Field("INFO", alias="LOG_LEVEL")
    # The cyclic garbage collector's three thresholds ("young,middle,old", e.g. CPython's
    # own "700,10,10"); fleetprobe's are measured in docs/performance.md
    # (core/garbage_collector.py).
    gc_thresholds: Annotated[tuple[int, int, int], NoDecode] = Field(
        (10_000, 50, 100), alias="GC_THRESHOLDS"
    )

    @field_validator("fleetprobe_instance")
    @classmethod
    def _instance_is_a_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{0,32}", value):
            raise ValueError(
                f"FLEETPROBE_INSTANCE={value!r}: use at most 32 letters, digits, '_' or '-' "
                "(it becomes part of NATS stream, subject and bucket names)"
            )
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_count(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and 0 <= int(text) <= MAX_WORKERS:
            return int(text)
        raise ValueError(
            f"WORKERS: {value!r} is not a number of worker processes from 0 to {MAX_WORKERS}, "
            "or auto (the cores less one)"
        )

    @field_validator("nats_url")
    @classmethod
    def _nats_url_parses(cls, value: str) -> str:
        parse_servers(value)  # raises NatsUrlError, a ValueError naming NATS_URL
        return value

    @field_validator("sqlite_synchronous", "nats_sync_interval", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        # `API_TOKEN=` in an env file means "no token", not "the empty token".
        return None if value == "" else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        entries = _split(value)
        if entries is None:
            return value
        # `ALLOWED_HOSTS=` (empty) means the defaults, not "no host at all".
        return tuple(host_pattern(e) for e in entries) or None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        entries = _split(value)
        return tuple(str(parse_origin(e)) for e in entries) if entries is not None else value

    @field_validator("alert_retry_delays_seconds", "gc_thresholds", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        entries = _split(value)
        return tuple(entries) if entries is not None else value

    @field_validator("gc_thresholds")
    @classmethod
    def _thresholds_fit(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(not 1 <= t <= 10_000_000 for t in value):
            raise ValueError("give three thresholds, each between 1 and 10000000")
        return value

    @field_validator("alert_retry_delays_seconds")
    @classmethod
    def _delays_fit(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) > 20 or any(not 0 <= d <= 86_400 for d in value):
            raise ValueError("give at most 20 delays, each between 0 and 86400 seconds")
        return value

    # The queue's names in use.  ``FLEETPROBE_INSTANCE=site-b``: stream
    # ``site-b_FLEETPROBE_JOBS``, subject ``site-b.fleetprobe.jobs`` (metrics:
    # ``site-b.fleetprobe.metrics``), durable ``site-b-fleetprobe-workers``, bucket
    # ``site-b_fleetprobe_leader``; empty keeps the names as they are.  Derived, not
    # written back into the fields: re-validating a dump or a copy prefixes once.
    def _instance_prefixed(self, name: str, separator: str) -> str:
        instance = self.fleetprobe_instance
        return f"{instance}{separator}{name}" if instance else name

    @property
    def jobs_stream(self) -> str:
        return self._instance_prefixed(self.jobs_stream_base, "_")

    @property
    def jobs_subject(self) -> str:
        return self._instance_prefixed(self.jobs_subject_base, ".")

    @property
    def jobs_durable(self) -> str:
        return self._instance_prefixed(self.jobs_durable_base, "-")

    @property
    def metrics_subject(self) -> str:
        return self._instance_prefixed(self.metrics_subject_base, ".")

    @property
    def leader_bucket(self) -> str:
        return self._instance_prefixed(self.leader_bucket_base, "_")

    @model_validator(mode="after")
    def _timeouts_fit(self) -> Settings:
        if self.probe_timeout_seconds > self.probe_max_timeout_seconds:
            raise ValueError(
                f"PROBE_TIMEOUT_SECONDS={self.probe_timeout_seconds} exceeds "
                f"PROBE_MAX_TIMEOUT_SECONDS={self.probe_max_timeout_seconds}"
            )
        if self.ack_wait_override is not None and (
            self.ack_wait_override < self.longest_task_seconds + 2
        ):
            raise ValueError(
                f"ACK_WAIT_SECONDS={self.ack_wait_override:g} is shorter than the longest task "
                f"({self.longest_task_seconds:g}s, from PROBE_MAX_TIMEOUT_SECONDS and "
                "NATS_TIMEOUT) plus 2s: a slow task would be delivered again while it runs"
            )
        return self

    @property
    def longest_task_seconds(self) -> float:
        """The longest a single task may run: a probe or recorder request at its cap, plus
        the time to store and announce its result."""
        return max(self.probe_max_timeout_seconds, self.nats_timeout) + 2.0

    @property
    def ack_wait_seconds(self) -> float:
        """JetStream redelivers after this; it must outlive the longest task with margin."""
        if self.ack_wait_override is not None:
            return self.ack_wait_override
        return self.longest_task_seconds + self.ack_wait_margin_seconds

    @property
    def alert_attempt_seconds(self) -> float:
        """One delivery attempt's timeout: ALERT_TIMEOUT_SECONDS, capped by the longest
        task (which ack_wait is checked to outlive), so a delivery never runs twice at
        once."""
        return min(self.alert_timeout_seconds, self.longest_task_seconds)

    @property
    def alert_hold_seconds(self) -> float:
        """How long a delivery task may wait for its retry time before it hands the wait
        on to a new message: the wait and one attempt stay within ack_wait."""
        return max(0.5, self.ack_wait_seconds - self.alert_attempt_seconds - 2.0)

    @property
    def worker_processes(self) -> int:
        """``WORKERS`` as a number: ``auto`` is the cores this process may use, less one
        (the scheduler process's own: kicking, the in-process worker, the web app), and
        at most :data:`MAX_AUTO_WORKERS`."""
        if self.workers != "auto":
            return self.workers
        return auto_workers(usable_cpus())

    @property
    def nats_servers(self) -> list[str]:
        """The servers of ``NATS_URL`` (one, or a cluster's comma-separated list)."""
        return parse_servers(self.nats_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# Measured on two cores only (+1 beats +0 and +2); more processes on more cores are
# likelier to wait for SQLite's one writer than to add probes: set WORKERS to go past it.
MAX_AUTO_WORKERS = 3
MAX_WORKERS = 64


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(cpus: int) -> int:
    """``WORKERS=auto`` on ``cpus`` cores::

    >>> [auto_workers(n) for n in (1, 2, 4, 16)]
    [0, 1, 3, 3]
    """
    return max(0, min(cpus - 1, MAX_AUTO_WORKERS))


def _split(value: object) -> list[str] | None:
    """The entries of a comma-separated list (or of a list of strings); None for anything
    else, which pydantic then refuses with its own message.

    >>> _split(" a, b,,c "), _split(["a"]), _split(3)
    (['a', 'b', 'c'], ['a'], None)
    """
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    return None


def settings_error(exc: ValidationError) -> str:
    """A settings error as one line naming each variable::

    >>> try:
    ...     Settings(NATS_URL="nats://h:x")
    ... except ValidationError as exc:
    ...     print(settings_error(exc))
    NATS_URL: 'nats://h:x' has port 'x', not a number 1-65535
    """
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = re.sub(r"^Value error, ", "", str(error.get("msg", "")))
        if message.startswith(f"{where}: "):  # the message names the variable already
            parts.append(message)
        else:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def shared_feed_note(settings: Settings) -> str | None:
    """What an installation with an instance name shares unless told otherwise: the events
    subject (``EVENTS_SUBJECT`` is not prefixed, the seed's ``items.updates`` stays the
    default).  Said at start as information, not as a warning: each event carries its
    installation's id and the other installations' are dropped (jobs.events); only
    messages from outside fleetprobe reach every installation, as ``nats.inbound``.

    >>> print(shared_feed_note(Settings(FLEETPROBE_INSTANCE="b", EVENTS_SUBJECT="items.updates")))
    FLEETPROBE_INSTANCE=b shares EVENTS_SUBJECT=items.updates with ... their events are dropped ...
    >>> shared_feed_note(Settings(FLEETPROBE_INSTANCE="b", EVENTS_SUBJECT="b.items"))
    >>> shared_feed_note(Settings(FLEETPROBE_INSTANCE="", EVENTS_SUBJECT="items.updates"))
    """
    default = Settings.model_fields["events_subject"].default
    if not settings.fleetprobe_instance or settings.events_subject != default:
        return None
    return (
        f"FLEETPROBE_INSTANCE={settings.fleetprobe_instance} shares EVENTS_SUBJECT={default} "
        "with any other installation on this NATS server: their events are dropped here "
        "(each carries its installation's id), messages from outside fleetprobe reach every "
        f"installation as nats.inbound; set EVENTS_SUBJECT (e.g. "
        f"{settings.fleetprobe_instance}.{default}) for a subject of its own"
    )
