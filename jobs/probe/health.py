"""Each device's health kept at the database: results folded through the state machine
(:mod:`jobs.probe.state`), every change decided once by compare-and-swap.

- :meth:`HealthTracker.after_insert` is the check writer's hook: inside the batch's
  transaction it folds each device's landed rows in slot order and writes the new
  health and a ``state_changes`` row per change (:mod:`storage.health`: a few
  statements per batch, not per row; the health as JSON text, encoded and decoded by
  msgspec straight to and from :class:`Health`: :func:`encode_health`,
  :func:`decode_health`); after the commit it publishes
  ``device.state_changed`` and calls the listeners (:data:`StateListener`, e.g. the
  alerts).  Only the process whose write landed announces.
- :meth:`HealthTracker.sweep` is the leading scheduler's periodic pass: ``unknown`` for a
  device with no result for two intervals, ``paused`` / back to ``unknown`` for a device
  whose ``is_active`` says so; :meth:`HealthTracker.set_active` is the same for one
  device, at once, from the API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.settings import Settings
from jobs.events import DEVICE_RETRYING, DEVICE_STATE_CHANGED, EventPublisher
from jobs.probe.conditions import Outcome
from jobs.probe.state import (
    Health,
    Observation,
    State,
    Thresholds,
    Transition,
    pause,
    quiet_since,
    resume,
    retrying,
    stale,
    step,
)
from storage import health as store
from storage.engine import connected
from storage.health import HealthRow, HealthWrite, StateChangeRow
from storage.types import isoformat_z
from storage.uptime_maths import outcome_of
from storage.writer import PostCommit, RetryBatch, Row

log = logging.getLogger(__name__)

# A device's Health as JSON text and back (the dataclasses, their enums and aware
# datetimes; the document pydantic wrote before, without its spaces).  msgspec: ~5 µs
# each way for a full window of 16 results, against ~60 / ~30 µs through pydantic and
# the JSON column type.
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Health)


def encode_health(health: Health) -> str:
    """``health`` as the JSON text of ``device_health.health``."""
    return _ENCODER.encode(health).decode()


def decode_health(text: str | bytes) -> Health:
    """A stored ``device_health.health`` back as :class:`Health` (raises
    ``msgspec.ValidationError`` for a document that is not one)."""
    return _DECODER.decode(text)


# A change as stored; a listener is handed every change a commit stored, at once, after
# that commit (one call per batch, never an empty one).
StateChangeRecord = StateChangeRow
StateListener = Callable[[Sequence[StateChangeRecord]], Awaitable[None]]
CAUSE_MAX = 500


def observation(row: Row) -> Observation:
    """A stored check row as the state machine sees it: its outcome (``status_up`` for
    rows without one), its slot (``checked_at`` for manual runs), what failed."""
    outcome = Outcome(outcome_of(row))
    return Observation(outcome, row.get("slot_at") or row["checked_at"], row["run_key"], cause(row))


def cause(row: Row) -> str | None:
    """What made a result fail (or degrade): the verdicts that say so, else the error.

    >>> cause({"outcome": "down", "verdicts": [
    ...     {"condition": "[STATUS] == 200", "success": False, "actual": "503"}]})
    '[STATUS] == 200 (actual 503)'
    """
    outcome = outcome_of(row)
    if outcome == "up":
        return None
    key, wanted = ("verdicts", False) if outcome == "down" else ("degraded_verdicts", True)
    said = [
        f"{v.get('condition')} (actual {v.get('actual')})"
        for v in row.get(key) or ()
        if isinstance(v, dict) and v.get("success") is wanted
    ]
    text = "; ".join(said) or None
    if text is None and outcome == "down":
        code = row.get("status_code")
        text = row.get("error") or (None if code is None else f"status {code}")
    return None if text is None else text[:CAUSE_MAX]


async def retry_intervals(
    bind: AsyncEngine | AsyncConnection, device_ids: Sequence[int] | None
) -> dict[int, int]:
    """The devices to probe at their ``retry_interval_seconds`` now, with it, by id: what
    every scheduler reads from the database alike, so their slots agree.  ``bind``: an
    engine, or a connection already open (the scheduler's read of the specs)."""
    async with connected(bind) as conn:
        rows = await store.retry_rows(conn, device_ids)
    return {i: retry for i, retry, health in rows if retrying(decode_health(health))}


def thresholds_of(row: HealthRow) -> Thresholds:
    return Thresholds(max(1, row.failure_threshold), max(1, row.success_threshold))


def health_of(row: HealthRow) -> Health:
    if row.health is None:
        return Health.new(row.created_at, State.UNKNOWN if row.is_active else State.PAUSED)
    return decode_health(row.health)


def health_write(device_id: int, old: int, health: Health) -> HealthWrite:
    """``health`` as stored for ``device_id`` (whose row had revision ``old``): the state
    and since columns, the JSON document and when its silence started counting."""
    return HealthWrite(
        device_id,
        old,
        health.revision,
        str(health.state),
        health.since,
        encode_health(health),
        None if (quiet := quiet_since(health)) is None else quiet.timestamp(),
    )


def _change_row(device_id: int, revision: int, t: Transition) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "revision": revision,
        "from_state": str(t.from_state),
        "to_state": str(t.to_state),
        "at": t.at,
        "cause": t.cause[:CAUSE_MAX] if t.cause else None,
        "run_key": t.run_key,
    }


def event_payload(change: StateChangeRecord) -> dict[str, Any]:
    """``device.state_changed``: ``{device_id, from, to, since, cause, run_key}``."""
    return {
        "device_id": change.device_id,
        "from": change.from_state,
        "to": change.to_state,
        "since": isoformat_z(change.at),
        "cause": change.cause,
        "run_key": change.run_key,
    }


# A device's new health and each change on the way, with the revision it produced.
Decide = Callable[[HealthRow, Health], tuple[Health, list[tuple[int, Transition]]]]


@dataclass
class HealthTracker:
    """Writes device health and announces its changes (one per process that writes)."""

    events: EventPublisher | None = None
    listeners: list[StateListener] | None = None
    changes_announced: int = 0

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener`` with the changes each commit of this process stored (all of
        a batch's in one call), after that commit."""
        if self.listeners is None:
            self.listeners = []
        self.listeners.append(listener)

    async def after_insert(self, conn: AsyncConnection, rows: Sequence[Row]) -> PostCommit | None:
        """The check writer's hook: fold the landed rows into their devices' health."""
        by_device: dict[int, list[Observation]] = {}
        for row in rows:
            by_device.setdefault(row["device_id"], []).append(observation(row))

        def decide(found: HealthRow, health: Health) -> tuple[Health, list[tuple[int, Transition]]]:
            changes = []
            limits = thresholds_of(found)
            for obs in sorted(by_device[found.device_id], key=lambda o: (o.at, o.run_key)):
                health, change = step(health, obs, limits)
                if change is not None:
                    changes.append((health.revision, change))
            return health, changes

        # The batch's INSERT took SQLite's write lock already: no extra statement for it.
        return await self.apply(conn, list(by_device), decide, locked=True)

    async def apply(
        self,
        conn: AsyncConnection,
        device_ids: Sequence[int] | None,
        decide: Decide,
        *,
        locked: bool = False,
    ) -> PostCommit | None:
        """Read (and lock) the devices' health, ``decide`` each, write what changed by
        compare-and-swap, store the changes; the announcement to run after the commit.
        ``locked``: the transaction has written already, so on SQLite it holds the
        database's write lock (the check writer's, after its INSERT)."""
        if device_ids is not None and not device_ids:
            return None
        found = await self._read(conn, device_ids, locked)
        writes: list[HealthWrite] = []
        changes: list[dict[str, Any]] = []
        retry: dict[int, bool] = {}  # devices that start or stop being probed more often
        for row in found.values():
            old = health_of(row)
            new, transitions = decide(row, old)
            if new == old and row.revision is not None:
                continue
            writes.append(health_write(row.device_id, row.revision or 0, new))
            changes.extend(_change_row(row.device_id, rev, t) for rev, t in transitions)
            if row.retry_interval_seconds is not None and retrying(old) != retrying(new):
                retry[row.device_id] = retrying(new)
        await store.swap(conn, writes)
        stored = await store.insert_changes(conn, changes)
        if not stored and not retry:
            return None

        async def announce() -> None:
            await self.announce(stored)
            for device_id, now_retrying in retry.items():
                if self.events is not None:
                    # The schedulers re-read the device (payload "id", as device.*).
                    payload = {"id": device_id, "device_id": device_id, "retrying": now_retrying}
                    await self.events.publish(DEVICE_RETRYING, payload)

        return announce

    async def _read(
        self, conn: AsyncConnection, device_ids: Sequence[int] | None, locked: bool
    ) -> dict[int, HealthRow]:
        """The devices' health rows, each device that has none given its first (another
        writer's may win on PostgreSQL), locked against other writers until the commit.
        One read when every device has its row (the common case)."""
        if not locked:
            await store.take_write_lock(conn)
        if device_ids is None or conn.dialect.name != "postgresql":
            # SQLite (the write lock held: no other writer can add or move a row) or
            # every device: one read, the missing rows inserted.
            found = await store.read_rows(conn, device_ids)
            missing = {
                row.device_id: health_write(row.device_id, 0, health_of(row))
                for row in found.values()
                if row.health is None
            }
            await store.ensure_rows(conn, missing)
            if conn.dialect.name == "postgresql":  # every device: read again, locked
                return await store.read_rows(conn, device_ids, lock=True)
            for device_id, w in missing.items():  # as inserted: nobody else could
                found[device_id] = replace(found[device_id], revision=w.revision, health=w.health)
            return found
        # PostgreSQL: the rows that exist, locked (FOR UPDATE takes no missing side of an
        # outer join); then the devices without one (their first result), inserted and
        # read locked.  A device that is gone has no entry.
        found = await store.read_rows(conn, device_ids, lock=True)
        absent = [i for i in device_ids if i not in found]
        if absent:
            new = await store.read_rows(conn, absent)
            await store.ensure_rows(
                conn,
                {
                    i: health_write(i, 0, health_of(row))
                    for i, row in new.items()
                    if row.health is None
                },
            )
            found.update(await store.read_rows(conn, list(new), lock=True))
        return found

    async def announce(self, stored: Iterable[StateChangeRecord]) -> None:
        stored = list(stored)
        for change in stored:
            log.info(
                "device state changed device=%d state=%s->%s cause=%s run_key=%s",
                change.device_id,
                change.from_state,
                change.to_state,
                change.cause,
                change.run_key,
            )
            self.changes_announced += 1
            if self.events is not None:
                await self.events.publish(DEVICE_STATE_CHANGED, event_payload(change))
        if not stored:
            return
        for listener in self.listeners or ():
            try:
                await listener(stored)
            except Exception:  # one listener's failure is not the others'
                log.exception("state change listener failed changes=%d", len(stored))

    async def run(
        self, engine: AsyncEngine, device_ids: Sequence[int] | None, decide: Decide
    ) -> int:
        """:meth:`apply` in a transaction of its own, then the announcement; how many
        changes were stored.  A missed compare-and-swap is tried again from fresh reads."""
        for attempt in range(5):
            try:
                async with engine.begin() as conn:
                    action = await self.apply(conn, device_ids, decide)
            except RetryBatch:
                log.warning("health write retry attempt=%d", attempt + 1)
                continue
            before = self.changes_announced
            if action is not None:
                await action()
            return self.changes_announced - before
        raise RuntimeError("device health: compare-and-swap kept missing")

    async def sweep(self, engine: AsyncEngine, settings: Settings, now: datetime) -> int:
        """The periodic pass of the leading scheduler over every device: ``unknown``
        after two intervals (plus the probe timeout) without a result, ``paused`` /
        ``unknown`` where ``is_active`` changed behind the API's back.  Returns how
        many changes it stored."""

        def decide(row: HealthRow, health: Health) -> tuple[Health, list[tuple[int, Transition]]]:
            if not row.is_active:
                new, change = pause(health, now)
            elif health.state is State.PAUSED:
                new, change = resume(health, now)
            else:
                interval = row.interval_seconds or settings.monitor_period_seconds
                grace = row.timeout_seconds or settings.probe_timeout_seconds
                new, change = stale(health, now, interval, grace)
            return new, [] if change is None else [(new.revision, change)]

        # A read without locks first: most sweeps change nothing and take no write lock.
        # The database selects the devices that may change (storage.health's
        # sweep_candidates, a superset); only their health is read and decoded.
        async with engine.connect() as conn:
            candidates = await store.sweep_candidates(
                conn,
                now_s=now.timestamp(),
                default_interval_s=settings.monitor_period_seconds,
                default_grace_s=settings.probe_timeout_seconds,
                paused=str(State.PAUSED),
            )
            found = await store.read_rows(conn, candidates) if candidates else {}
        due = [
            i for i, row in found.items() if row.health is None or decide(row, health_of(row))[1]
        ]
        if not due:
            return 0
        return await self.run(engine, due, decide)

    async def set_active(
        self, engine: AsyncEngine, device_id: int, active: bool, now: datetime
    ) -> int:
        """``is_active`` changed through the API: ``paused``, or back to ``unknown``."""

        def decide(_row: HealthRow, health: Health) -> tuple[Health, list[tuple[int, Transition]]]:
            new, change = resume(health, now) if active else pause(health, now)
            return new, [] if change is None else [(new.revision, change)]

        return await self.run(engine, [device_id], decide)

    async def create(self, engine: AsyncEngine, device_id: int) -> None:
        """A new device's health row: ``unknown`` (``paused`` if created inactive)."""
        await self.run(engine, [device_id], lambda _row, health: (health, []))
