"""``web/badges.py``, pure: colours, uptime text, the SVG and the shields JSON (the
``?window=`` parser is ``storage.uptime_maths.parse_window``, tested there)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from web.badges import badge_svg, format_uptime, shields, uptime_color


@pytest.mark.parametrize(
    ("percent", "color"),
    [
        (None, "lightgrey"),
        (100.0, "brightgreen"),
        (99.9, "brightgreen"),
        (99.5, "green"),
        (98.0, "yellow"),
        (96.0, "orange"),
        (94.9, "red"),
        (0.0, "red"),
    ],
)
def test_uptime_colours(percent: float | None, color: str) -> None:
    assert uptime_color(percent) == color


@pytest.mark.parametrize(
    ("percent", "text"),
    [(None, "no data"), (100.0, "100%"), (99.95, "99.95%"), (66.666, "66.67%"), (50.0, "50%")],
)
def test_uptime_text(percent: float | None, text: str) -> None:
    assert format_uptime(percent) == text


def test_the_svg_is_well_formed_escaped_and_coloured() -> None:
    svg = badge_svg('a<b & "c"', "down", "red")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ['a<b & "c"', "down"]
    fills = [r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert fills == ["#555", "#e05d44"]
    assert int(root.get("width", "0")) > int(
        ET.fromstring(badge_svg("a", "up", "red")).get("width", "0")
    )


def test_an_unknown_colour_is_grey_and_shields_json_has_its_four_keys() -> None:
    assert 'fill="#9f9f9f"' in badge_svg("x", "y", "no-such-colour")
    assert shields("status", "up", "brightgreen") == {
        "schemaVersion": 1,
        "label": "status",
        "message": "up",
        "color": "brightgreen",
    }
