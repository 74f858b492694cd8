"""Hooks for the schemathesis run in ``test_web_docs.py`` (loaded through
``SCHEMATHESIS_HOOKS``).

The run has no worker (a generated device address may name any host, and tests only
talk to 127.0.0.1), so a probe or cycle that waits would wait for its whole timeout:
every valid ``timeout`` is cut to a fraction of a second.  Invalid values are left alone,
so the 422 paths are still exercised.
"""

from __future__ import annotations

from typing import Any

import schemathesis

WAIT_CAP_SECONDS = 0.2


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]
) -> None:
    if case.operation.path not in ("/jobs/probe", "/tasks/run"):
        return
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
