"""Column types at the storage edge."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# The largest id a row can have (a signed 64-bit integer, PostgreSQL's BIGINT).
MAX_ID = 2**63 - 1


# How SQLAlchemy's SQLite DateTime stores a (UTC, naive) time.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat_z(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, as pydantic writes an aware UTC datetime: the one
    timestamp format of the REST API, the WebSocket and NATS events.

    >>> isoformat_z(datetime(2025, 10, 15, 8, 55, tzinfo=UTC))
    '2025-10-15T08:55:00Z'
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime refused: {value!r}")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite drops the time zone: attach UTC on read; refuse naive values on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def driver_time(dialect: Dialect, value: datetime) -> Any:
    """An aware datetime as :class:`UTCDateTime` hands it to the driver (SQLite: UTC text;
    PostgreSQL: the aware datetime), for statements run with ``exec_driver_sql``."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime refused: {value!r}")
    if dialect.name == "sqlite":
        return value.astimezone(UTC).strftime(SQLITE_TIME)
    return value


class JSONText(TypeDecorator[str]):
    """A JSON document kept as text that its owner encodes and decodes (e.g. with
    msgspec, straight to and from its own types): text in, text out.  A dict or list
    given is encoded with ``json.dumps``, as SQLAlchemy's JSON type would have stored it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)
