"""Imports point down (docs/architecture.md): the import-linter contracts of pyproject.toml
hold on the tree, and they break when an import points up."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

PACKAGES = ("core", "storage", "jobs", "web")
ENTRY_POINTS = ("scheduler", "worker")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(target: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward", "contract"),
    [
        ("core/loop.py", "import storage.db", "web -> jobs -> storage -> core"),
        ("storage/repo.py", "import web.app", "web -> jobs -> storage -> core"),
        ("jobs/queue/kick.py", "import jobs.probe.job", "worker -> recorder -> probe"),
        ("jobs/events.py", "import jobs.scheduling.mirror", "worker -> recorder -> probe"),
        ("jobs/probe/task.py", "import jobs.worker", "worker -> recorder -> probe"),
        ("web/cycles.py", "import jobs.probe.task", "the enqueuing side"),
    ],
)
def test_an_import_that_points_up_breaks_a_contract(
    tmp_path: Path, module: str, upward: str, contract: str
) -> None:
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{upward}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_package_imports_an_entry_point() -> None:
    """scheduler.py and worker.py compose the packages: nothing below imports them."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in ENTRY_POINTS
        )
        for name in PACKAGES
        for path in sorted((ROOT / name).rglob("*.py"))
    }
    assert {path: found for path, found in offenders.items() if found} == {}
    assert len(offenders) > 50  # the walk did read the packages
