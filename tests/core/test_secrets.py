"""Secrets shown as ``***`` (pure): masking and the round trip that keeps them."""

from __future__ import annotations

import doctest

import pytest

import core.secrets
from core.secrets import MASK, keep_masked, mask_values


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(core.secrets)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (None, None),
        ({}, {}),
        ({"Authorization": "Bearer t"}, {"Authorization": MASK}),
        ({"A": "", "B": MASK}, {"A": MASK, "B": MASK}),
    ],
)
def test_mask_values(values: dict[str, str] | None, shown: dict[str, str] | None) -> None:
    assert mask_values(values) == shown


@pytest.mark.parametrize(
    ("sent", "stored", "kept"),
    [
        ({"A": MASK}, {"A": "1"}, {"A": "1"}),  # the round trip changes nothing
        ({"A": "2"}, {"A": "1"}, {"A": "2"}),  # a new value replaces it
        ({}, {"A": "1"}, {}),  # a name left out is removed
        ({"B": MASK}, {"A": "1"}, {"B": MASK}),  # nothing stored under B: as sent
        ({"A": MASK}, None, {"A": MASK}),
        ({"a": MASK}, {"A": "1"}, {"a": MASK}),  # names match exactly, as stored
    ],
)
def test_keep_masked(
    sent: dict[str, str], stored: dict[str, str] | None, kept: dict[str, str]
) -> None:
    assert keep_masked(sent, stored) == kept
