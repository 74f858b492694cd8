"""The grammar of conditions: text in, a :class:`Condition` (or a :class:`ConditionError`
saying where and why) out. What the language means is in ``jobs.probe.conditions``.

    >>> parse_condition("[BODY].items[0].state == any(ok, fine)")  # doctest: +NORMALIZE_WHITESPACE
    Condition(text='[BODY].items[0].state == any(ok, fine)',
              left=Ref(name='BODY', path=('items', 0, 'state'), func=None),
              operator='==', right=AnyOf(options=('ok', 'fine')))
    >>> parse_condition("[STATUS] == OK")
    Traceback (most recent call last):
    jobs.probe.syntax.ConditionError: [STATUS] is a number, got 'OK' at 12
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from jobs.probe.placeholders import CHOICES, PLACEHOLDERS, Kind, Ref
from jobs.probe.placeholders import millis as _millis
from jobs.probe.placeholders import number as _number


class ConditionError(ValueError):
    """A condition that does not parse: its text, the 0-based character where it broke,
    and what is wrong; ``index`` is its place in a device's list (``parse_conditions``)."""

    def __init__(self, condition: str, position: int, message: str) -> None:
        super().__init__(f"{message} at {position}")
        self.condition, self.position, self.message = condition, position, message
        self.index: int | None = None


@dataclass(frozen=True, slots=True)
class Pattern:
    glob: str


@dataclass(frozen=True, slots=True)
class AnyOf:
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition (from :func:`parse_condition`): evaluate it on many results."""

    text: str
    left: Ref
    operator: str
    right: Ref | Pattern | AnyOf | str

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders it reads (to check them against the device's check kind)."""
        names = {self.left.name}
        if isinstance(self.right, Ref):
            names.add(self.right.name)
        return frozenset(names)


_ORDERING = ("<", "<=", ">", ">=")
_OPERATORS = ("==", "!=", *_ORDERING)
_NAME = re.compile(r"\[([A-Za-z_]+)\]")
_SHOUTED = re.compile(r"\[[A-Z_]+\]")
_KEY = re.compile(r"[^.\[\]\s()]+")
_INDEX = re.compile(r"\[(\d+)\]")
_OPERATOR = re.compile(r"[=!<>~]+")
_SPACE = re.compile(r"\s*")


@lru_cache(maxsize=4096)
def parse_condition(text: str) -> Condition:
    """Parse one condition (cached by its text); raises :class:`ConditionError`.

    >>> parse_condition("len([BODY].items) >= 1").left
    Ref(name='BODY', path=('items',), func='len')
    >>> parse_condition("[STATUS]")
    Traceback (most recent call last):
    jobs.probe.syntax.ConditionError: missing operator (==, !=, <, <=, >, >=) at 8
    """
    if not text.strip():
        raise ConditionError(text, 0, "empty condition")
    pos = _skip(text, 0)
    if text.startswith(("pat(", "any("), pos):
        raise ConditionError(text, pos, f"{text[pos : pos + 3]}() belongs on the right-hand side")
    if not text.startswith(("[", "len(", "has("), pos):
        raise ConditionError(
            text, pos, "expected a placeholder such as [STATUS], len(...) or has(...)"
        )
    left, pos = _operand(text, pos)
    pos = _skip(text, pos)
    match = _OPERATOR.match(text, pos)
    if match is None:
        raise ConditionError(text, pos, "missing operator (==, !=, <, <=, >, >=)")
    op = match[0]
    if op not in _OPERATORS:
        raise ConditionError(text, pos, f"unknown operator {op} (use ==, !=, <, <=, >, >=)")
    if op in _ORDERING and left.kind in (Kind.BOOL, Kind.TEXT):
        raise ConditionError(text, pos, f"{left} is {left.kind.value}: compare it with == or !=")
    start = _skip(text, match.end())
    if start == len(text):
        raise ConditionError(text, start, f"missing value after {op}")
    return Condition(text, left, op, _right(text, start, op, left))


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # \s* always matches


def _operand(text: str, pos: int) -> tuple[Ref, int]:
    """A placeholder at ``pos``, maybe with a path, maybe in len()/has(); and where it ends."""
    func = text[pos : pos + 3] if text.startswith(("len(", "has("), pos) else None
    if func:
        if not text.startswith("[", pos + 4):
            raise ConditionError(
                text, pos + 4, f"{func}() takes a placeholder such as [BODY].items"
            )
        ref, end = _placeholder(text, pos + 4)
        if not text.startswith(")", end):
            raise ConditionError(text, end, f"missing ) to close {func}(")
        return Ref(ref.name, ref.path, func), end + 1
    return _placeholder(text, pos)


def _placeholder(text: str, pos: int) -> tuple[Ref, int]:
    match = _NAME.match(text, pos)
    if match is None or match[1].upper() not in PLACEHOLDERS:
        close = text.find("]", pos)
        if close < 0:
            raise ConditionError(text, pos, "missing ] to close the placeholder")
        raise ConditionError(text, pos, f"unknown placeholder {text[pos : close + 1]}")
    name, end, path = match[1].upper(), match.end(), list[str | int]()
    while end < len(text) and text[end] in ".[":
        if text.startswith(".[", end):  # Gatus also reads [BODY].[0]
            end += 1
        if text[end] == ".":
            key = _KEY.match(text, end + 1)
            if key is None:
                raise ConditionError(text, end + 1, "missing key after .")
            path.append(key[0])
            end = key.end()
            continue
        index = _INDEX.match(text, end)
        if index is None:
            close = text.find("]", end)
            if close < 0:
                raise ConditionError(text, end, "missing ] to close the index")
            got = text[end + 1 : close]
            raise ConditionError(text, end + 1, f"an index is a whole number, got {got!r}")
        path.append(int(index[1]))
        end = index.end()
    if path and name != "BODY":
        raise ConditionError(text, match.end(), f"[{name}] takes no path; only [BODY] does")
    return Ref(name, tuple(path)), end


def _right(text: str, pos: int, op: str, left: Ref) -> Ref | Pattern | AnyOf | str:
    rest = text[pos:].rstrip()
    end = pos + len(rest)
    if rest.startswith(("pat(", "any(")):
        func = rest[:3]
        if op in _ORDERING:
            raise ConditionError(text, pos, f"{func}() works only with == and !=")
        if not rest.endswith(")"):
            raise ConditionError(text, end, f"missing ) at the end of {func}(")
        inner = rest[4:-1]
        if not inner.strip():
            raise ConditionError(text, pos + 4, f"{func}() needs a value")
        if func == "pat":
            return Pattern(inner)
        options, offset = [], pos + 4
        for raw in inner.split(","):
            option = raw.strip()
            at = offset + len(raw) - len(raw.lstrip())
            if not option:
                raise ConditionError(text, at, "any() has an empty value")
            options.append(_literal(text, at, option, op, left))
            offset += len(raw) + 1
        return AnyOf(tuple(options))
    named = _NAME.match(rest)
    if rest.startswith(("len(", "has(")) or (named and named[1].upper() in PLACEHOLDERS):
        ref, stop = _operand(text, pos)
        stop = _skip(text, stop)
        if stop != end:
            raise ConditionError(text, stop, f"unexpected text after {ref}")
        return ref
    if _SHOUTED.match(rest):  # [STATU]: a misspelt placeholder, not the text "[STATU]"
        _placeholder(text, pos)
    return _literal(text, pos, rest, op, left)


def _literal(text: str, pos: int, value: str, op: str, left: Ref) -> str:
    """``value`` checked against what ``left`` reads (normalised: ``True`` -> ``true``)."""
    kind = left.kind
    if kind is Kind.BOOL:
        if value.lower() not in ("true", "false"):
            raise ConditionError(text, pos, f"{left} is true or false, got {value!r}")
        return value.lower()
    if kind is Kind.NUMBER and _number(value) is None:
        raise ConditionError(text, pos, f"{left} is a number, got {value!r}")
    if kind is Kind.MILLIS and _millis(value) is None:
        raise ConditionError(
            text, pos, f"{left} is milliseconds or a duration (72h, 30d, 1h30m), got {value!r}"
        )
    if op in _ORDERING and _millis(value) is None:
        raise ConditionError(
            text, pos, f"{op} needs a number or a duration (72h, 30d, 1h30m), got {value!r}"
        )
    choices = CHOICES.get(left.name) if kind is Kind.TEXT else None
    if choices and value not in choices:
        raise ConditionError(text, pos, f"{left} is one of {', '.join(choices)}; got {value!r}")
    return value


def parse_conditions(texts: Iterable[str]) -> tuple[Condition, ...]:
    """Parse a device's list; the error's ``index`` says which one broke (for a 422)."""
    parsed = []
    for index, text in enumerate(texts):
        try:
            parsed.append(parse_condition(text))
        except ConditionError as error:
            error.index = index
            raise
    return tuple(parsed)
