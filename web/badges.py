"""Badges, pure: a shields.io-style flat SVG and the same data in the shields.io
endpoint format (``{"schemaVersion": 1, "label", "message", "color"}``), the colour of a
state or an uptime.  (The uptime badge's ``?window=`` is
:func:`storage.uptime_maths.parse_window`, the parser of ``/devices/{id}/uptime``.)

>>> shields("status", "up", STATE_COLORS["up"])["color"]
'brightgreen'
"""

from __future__ import annotations

from html import escape

__all__ = [
    "STATE_COLORS",
    "badge_svg",
    "format_uptime",
    "shields",
    "uptime_color",
]

# shields.io's named colours (the endpoint format takes the names) and their hex values.
_HEX = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "lightgrey": "#9f9f9f",
    "blue": "#007ec6",
}
STATE_COLORS = {
    "up": "brightgreen",
    "degraded": "yellow",
    "down": "red",
    "unknown": "lightgrey",
    "paused": "blue",
}


def uptime_color(percent: float | None) -> str:
    """Shields' colour for an uptime: grey without data, then red below 95 % up to green."""
    if percent is None:
        return "lightgrey"
    for floor, color in (
        (99.9, "brightgreen"),
        (99.0, "green"),
        (97.0, "yellow"),
        (95.0, "orange"),
    ):
        if percent >= floor:
            return color
    return "red"


def format_uptime(percent: float | None) -> str:
    """``99.95%``; ``100%``; ``no data``."""
    if percent is None:
        return "no data"
    text = f"{percent:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def shields(label: str, message: str, color: str) -> dict[str, object]:
    """The shields.io endpoint format (https://shields.io/badges/endpoint-badge)."""
    return {"schemaVersion": 1, "label": label, "message": message, "color": color}


def _text_width(text: str) -> int:
    # Verdana 11px averages about 6.5 px per character; wide enough for the usual words.
    return round(len(text) * 6.5) + 10


def badge_svg(label: str, message: str, color: str) -> str:
    """A flat badge: ``label`` on grey, ``message`` on ``color`` (a shields colour name)."""
    left, right = _text_width(label), _text_width(message)
    total = left + right
    fill = _HEX.get(color, _HEX["lightgrey"])
    lab, msg = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{lab}: {msg}"><title>{lab}: {msg}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{fill}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2}" y="14">{lab}</text>'
        f'<text x="{left + right / 2}" y="14">{msg}</text></g></svg>'
    )
