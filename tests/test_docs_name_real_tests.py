"""The tests the documents name as proof exist, in the file they name: a renamed or
removed test breaks this, not the promise silently."""

from __future__ import annotations

import ast
import re

import pytest

from tests.processes import ROOT

DOCS = ("docs/reliability.md", "docs/security.md", "docs/uptime.md")
# `tests/a/b.py::test_x` or a bare `::test_y` (of the file named before it) or `test_z`.
_NAMED = re.compile(r"(tests/[\w/]+\.py)?::(test_\w+)|`(test_\w+)`")


def defined_tests() -> dict[str, set[str]]:
    """Each test function's name -> the files (relative to the root) that define it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("test_"):
                found.setdefault(node.name, set()).add(str(path.relative_to(ROOT)))
    return found


def named_tests(text: str) -> list[tuple[str | None, str]]:
    """``(file or None, test name)`` for every test the text names; a ``::name`` after a
    file belongs to that file until the next file is named::

    >>> named_tests("`tests/a.py::test_x`, `::test_y`; `test_z`")
    [('tests/a.py', 'test_x'), ('tests/a.py', 'test_y'), (None, 'test_z')]
    """
    out: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        current: str | None = None  # a ``::name`` belongs to a file named on its line
        for path, name, bare in _NAMED.findall(line):
            if bare:
                out.append((None, bare))
                continue
            current = path or current
            out.append((current, name))
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_a_document_names_exists_where_it_says(doc: str) -> None:
    text = (ROOT / doc).read_text()
    defined = defined_tests()
    named = named_tests(text)
    assert named, f"{doc} names no test"
    missing = [
        f"{path or '?'}::{name}"
        for path, name in named
        if name not in defined or (path is not None and path not in defined[name])
    ]
    assert not missing, f"{doc} names tests that do not exist: {missing}"
    for path in set(re.findall(r"`(tests/[\w/]+\.py)", text)):
        assert (ROOT / path).is_file(), f"{doc} names {path}, which does not exist"


def test_docstring_examples_hold() -> None:
    import doctest
    import sys

    result = doctest.testmod(sys.modules[__name__])
    assert result.attempted > 0 and result.failed == 0
