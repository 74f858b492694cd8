"""Secrets shown as ``***``: what the API and the events show of a stored secret, and how
an edit that sends ``***`` back keeps the stored value (pure).

    >>> mask_values({"Authorization": "Bearer t", "Accept": "text/html"})
    {'Authorization': '***', 'Accept': '***'}
    >>> keep_masked({"Authorization": "***", "X-New": "1"}, {"Authorization": "Bearer t"})
    {'Authorization': 'Bearer t', 'X-New': '1'}
"""

from __future__ import annotations

from collections.abc import Mapping

MASK = "***"


def mask_values(values: Mapping[str, str] | None) -> dict[str, str] | None:
    """Every value masked, the names kept (None stays None)."""
    return None if values is None else {name: MASK for name in values}


def keep_masked(sent: Mapping[str, str], stored: Mapping[str, str] | None) -> dict[str, str]:
    """``sent`` with each ``***`` value replaced by the stored value of the same name (a
    round trip of what the API showed changes nothing); a ``***`` with nothing stored
    under its name stays as sent."""
    stored = stored or {}
    return {
        name: stored[name] if value == MASK and name in stored else value
        for name, value in sent.items()
    }
