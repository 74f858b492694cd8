"""A notification's title and text, rendered from Jinja2 templates in a sandbox, pure.

Templates see ``device`` (id, name, address), ``state``, ``from_state``, ``cause``,
``since`` (ISO 8601), ``error``, ``latency_ms``, ``link``, ``reminder`` (0 for the
change itself) and ``after_maintenance`` (true: the device is still in that state now a
maintenance window that kept its change quiet is over).  An unknown name is an error,
not an empty string, so a typo is refused when the channel is saved::

    >>> render_message(None, None, SAMPLE)[0]
    'router is DOWN'
    >>> render_message(None, None, {**SAMPLE, "reminder": 1, "after_maintenance": True})[0]
    'router is still DOWN after maintenance'
    >>> render_template("{{ device.nam }}", SAMPLE)
    Traceback (most recent call last):
    ...
    jobs.alerts.templates.TemplateProblem: 'dict object' has no attribute 'nam'
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TITLE = (
    "{% if after_maintenance %}{{ device.name }} is still {{ state | upper }} after maintenance"
    "{% else %}{% if reminder %}[reminder {{ reminder }}] {% endif %}"
    "{{ device.name }} is {{ state | upper }}{% endif %}"
)
DEFAULT_TEXT = (
    "{{ device.name }}{% if device.address %} ({{ device.address }}){% endif %}"
    " is {% if after_maintenance %}still {{ state }} after maintenance: {% endif %}"
    "{{ state }} since {{ since }}"
    "{% if from_state %} (was {{ from_state }}){% endif %}."
    "{% if cause %}\nCause: {{ cause }}{% endif %}"
    "{% if error %}\nLast error: {{ error }}{% endif %}"
    "{% if latency_ms is not none %}\nLatency: {{ latency_ms | round(1) }} ms{% endif %}"
    "{% if link %}\n{{ link }}{% endif %}"
)
MAX_RENDERED = 4000

# What the API renders a template with before it accepts it.
SAMPLE: dict[str, Any] = {
    "device": {"id": 1, "name": "router", "address": "http://10.0.0.1/"},
    "state": "down",
    "from_state": "up",
    "cause": "3 failures in a row",
    "since": "2026-12-01T08:55:00+00:00",
    "error": "connection refused",
    "latency_ms": None,
    "link": "http://127.0.0.1:8002/#/devices/1",
    "reminder": 0,
    "after_maintenance": False,
}

_env = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


class TemplateProblem(ValueError):
    """A template that does not parse or render; the message says where."""


def render_template(source: str, context: dict[str, Any]) -> str:
    try:
        text = _env.from_string(source).render(**context)
    except TemplateError as exc:
        raise TemplateProblem(str(exc)) from None
    return text[:MAX_RENDERED]


def render_message(
    title_template: str | None, text_template: str | None, context: dict[str, Any]
) -> tuple[str, str]:
    """``(title, text)`` from a channel's templates, or the defaults."""
    title = render_template(title_template or DEFAULT_TITLE, context)
    text = render_template(text_template or DEFAULT_TEXT, context)
    return title, text
