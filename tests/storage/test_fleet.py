"""The fleet query behind ``GET /metrics``, on a real SQLite file with real rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.fleet import device_state, fleet
from storage.models import CheckResult, Device, DeviceHealth

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("is_active", "health", "shown"),
    [
        (True, None, "unknown"),
        (True, "up", "up"),
        (True, "degraded", "degraded"),
        (True, "down", "down"),
        (True, "unknown", "unknown"),
        (False, None, "paused"),
        (False, "down", "paused"),
        (True, "paused", "paused"),
    ],
)
def test_a_devices_shown_state(is_active: bool, health: str | None, shown: str) -> None:
    assert device_state(is_active, health) == shown


def check(device_id: int, n: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device_id": device_id,
        "status_up": True,
        "latency_ms": 10.0 * n,
        "checked_at": T0 + timedelta(minutes=n),
        "run_key": f"r:{device_id}:{n}",
        "certificate_expires_at": None,
    }
    return row | extra


async def test_each_device_with_its_state_latest_latency_and_certificate(
    engine: AsyncEngine,
) -> None:
    expiry = T0 + timedelta(days=30)
    devices = [
        {"id": 1, "name": "web", "address": "https://a.example"},
        {"id": 2, "name": "new", "address": "http://b.example"},
        {"id": 3, "name": "off", "address": "tls://c.example:443", "is_active": False},
        {"id": 4, "name": "plain", "address": "http://d.example"},
    ]
    async with engine.begin() as conn:
        for d in devices:
            await conn.execute(
                insert(Device.__table__),  # type: ignore[attr-defined]
                [{"is_active": True, "created_at": T0, "updated_at": T0} | d],
            )
        await conn.execute(
            insert(DeviceHealth.__table__),  # type: ignore[attr-defined]
            [
                {"device_id": 1, "state": "down", "since": T0, "health": {}, "updated_at": T0},
                {"device_id": 3, "state": "up", "since": T0, "health": {}, "updated_at": T0},
            ],
        )
        await conn.execute(
            insert(CheckResult.__table__),  # type: ignore[attr-defined]
            [
                check(1, 1, certificate_expires_at=expiry - timedelta(days=1)),
                check(1, 3, certificate_expires_at=expiry),
                check(1, 5, latency_ms=None, status_up=False),  # refused: no certificate seen
                check(1, 2, certificate_expires_at=expiry - timedelta(days=9)),
                check(3, 1, latency_ms=7.5, certificate_expires_at=expiry),
                # An http:// device is never looked at for a certificate, whatever it holds.
                check(4, 1, latency_ms=3.0, certificate_expires_at=expiry),
            ],
        )

    by_id = {d.id: d for d in await fleet(engine)}

    assert [by_id[i].state for i in (1, 2, 3, 4)] == ["down", "unknown", "paused", "unknown"]
    assert by_id[1].name == "web"
    assert by_id[1].latency_ms is None  # the latest result had none
    assert by_id[1].certificate_expires_at == expiry  # the newest that saw one
    assert by_id[2].latency_ms is None and by_id[2].certificate_expires_at is None
    assert by_id[3].latency_ms == 7.5 and by_id[3].certificate_expires_at == expiry
    assert by_id[3].certificate_expires_at.tzinfo is not None
    assert by_id[4].latency_ms == 3.0 and by_id[4].certificate_expires_at is None


async def test_an_empty_fleet_is_an_empty_list(engine: AsyncEngine) -> None:
    assert await fleet(engine) == []
