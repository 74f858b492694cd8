"""Hooks and checks for the schemathesis run in ``test_web_docs.py`` (loaded through
``SCHEMATHESIS_HOOKS``).

- Every valid device ``address`` is pointed at the test's local HTTP target
  (``FUZZ_TARGET_URL``): the run has a worker, and tests only talk to 127.0.0.1.
  Invalid addresses are left alone, so the 422 paths are still exercised.
- A probe or cycle that waits would wait for its whole timeout when a device is slow:
  every valid ``timeout`` is cut to a fraction of a second (invalid ones are kept).
- Every channel ``url`` of a ``webhook`` is pointed at the same local target, and an
  ``apprise`` one that Apprise accepts at ``json://`` on it: a channel test sends only
  to 127.0.0.1.
- ``refused_requests_change_nothing``: a request answered 4xx/5xx leaves the devices and
  recorder schedules (``FUZZ_DATABASE``, written only by API requests) as they were.
- ``every_operation_succeeds_once``: every operation answered 2xx at least once in the
  run, so no endpoint (the recorder's included) was only ever refused.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, TypeAlias

import schemathesis
from pydantic import TypeAdapter, ValidationError

from web.schemas import Address

WAIT_CAP_SECONDS = 0.2
_ADDRESS: TypeAdapter[str] = TypeAdapter(Address)
# A generated request of an OpenAPI operation (what every hook below receives).
Case: TypeAlias = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]
_WRITES = ("POST", "PATCH", "PUT", "DELETE")
# (the case, devices and schedules before it was sent); calls run one at a time.
_before: tuple[Case, Any] | None = None


def _cap_wait(case: Case) -> None:
    query = dict(case.query or {})
    if "timeout" in query:
        try:
            value = float(query["timeout"])
        except (TypeError, ValueError):
            return  # not a number: a 422 case, keep it
        if not 0 < value <= 300:
            return  # out of range: a 422 case, keep it
    query["timeout"] = WAIT_CAP_SECONDS
    case.query = query


def _local_address(case: Case) -> None:
    body = case.body
    target = os.environ.get("FUZZ_TARGET_URL")
    if not target or not isinstance(body, dict):
        return
    address = body.get("address")
    if not isinstance(address, str):
        return
    try:
        _ADDRESS.validate_python(address)
    except ValidationError:
        return  # an invalid address: a 422 case, keep it
    if address == address.strip():  # the spec's pattern refuses the padded ones
        case.body = {**body, "address": f"{target}/ok"}


def _local_channel(case: Case) -> None:
    body = case.body
    target = os.environ.get("FUZZ_TARGET_URL")
    if not target or not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return
    if body.get("kind") == "apprise":
        case.body = {**body, "url": target.replace("http://", "json://") + "/ok"}
    else:
        case.body = {**body, "url": f"{target}/ok"}


def _usable_window(case: Case) -> None:
    """Random crons and zone names almost never parse: a window body's cron and timezone
    (when they are strings) are made valid, so windows get created and read back; their
    422s are tested in tests/web/test_alerts_api.py."""
    body = case.body
    if not isinstance(body, dict):
        return
    changed = dict(body)
    if isinstance(body.get("cron"), str):
        changed["cron"] = "0 2 * * 0"
    if isinstance(body.get("timezone"), str):
        changed["timezone"] = "Europe/Berlin"
    case.body = changed


def _snapshot() -> Any:
    path = os.environ.get("FUZZ_DATABASE")
    if not path:
        return None
    with sqlite3.connect(path) as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("devices", "recorder_schedules")
        ]


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    global _before
    if case.operation.path in ("/jobs/probe", "/tasks/run"):
        _cap_wait(case)
    if case.operation.path.startswith("/devices"):
        _local_address(case)
    if case.operation.path.startswith("/channels"):
        _local_channel(case)
    if case.operation.path.startswith("/maintenance"):
        _usable_window(case)
    # The case itself, not its id(): a later case (a GET) may get a freed case's id and
    # be compared with that write's stale snapshot.  Anything but a write compares nothing.
    _before = (case, _snapshot()) if case.method.upper() in _WRITES else None


@schemathesis.check
class refused_requests_change_nothing:
    """A write answered with an error leaves devices and schedules unchanged."""

    def __init__(self) -> None:
        self.compared = 0

    def after_response(self, ctx: Any, response: schemathesis.Response, case: Case) -> None:
        if response.status_code < 400 or _before is None or _before[0] is not case:
            return
        if _before[1] is None:
            return
        before, after = _before[1], _snapshot()
        self.compared += 1
        if after != before:
            tables = list(zip(before, after, strict=True))
            was = [row for old, now in tables for row in old if row not in now]
            now = [row for old, now in tables for row in now if row not in old]
            raise AssertionError(
                f"{case.method} {case.formatted_path} answered {response.status_code} "
                f"but changed the database:\nrows before: {was}\nrows after:  {now}"
            )

    def after_run(self, ctx: Any) -> None:
        if os.environ.get("FUZZ_DATABASE") and self.compared == 0:
            raise AssertionError("no refused write was compared: is the hook wired?")


@schemathesis.check
class every_operation_succeeds_once:
    """Every operation tested answered 2xx at least once."""

    def __init__(self) -> None:
        self.tested: set[str] = set()
        self.reached: set[str] = set()

    def after_response(self, ctx: Any, response: schemathesis.Response, case: Case) -> None:
        self.tested.add(case.operation.label)
        if 200 <= response.status_code < 300:
            self.reached.add(case.operation.label)

    def after_run(self, ctx: Any) -> None:
        never = self.tested - self.reached
        if never:
            raise AssertionError("never answered 2xx: " + ", ".join(sorted(never)))
