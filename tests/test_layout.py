"""Imports point down (docs/architecture.md): the import-linter contracts of pyproject.toml
hold on the tree, and they break when an import points up."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.processes import ROOT

PACKAGES = ("core", "storage", "jobs", "web")
ENTRY_POINTS = ("scheduler", "worker")
# The start of the name of the contract on the layers inside jobs/ (pyproject.toml).
JOBS_LAYERS = "jobs: worker -> alerts -> recorder -> probe"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        # Wide enough that no contract's name is wrapped onto the line of its verdict.
        env={"PYTHONPATH": str(root), "PATH": "", "COLUMNS": "200"},
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
        ("jobs/queue/kick.py", "import jobs.probe.job", JOBS_LAYERS),
        ("jobs/events.py", "import jobs.scheduling.mirror", JOBS_LAYERS),
        ("jobs/probe/task.py", "import jobs.worker", JOBS_LAYERS),
        ("web/cycles.py", "import jobs.probe.task", "the enqueuing side"),
        ("jobs/alerts/kick.py", "import jobs.alerts.task", "the enqueuing side"),
        ("jobs/queue/kick.py", "import jobs.recorder.client", "the enqueuing side"),
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


def enqueuing_contract() -> tuple[list[str], list[str]]:
    """The source and the forbidden modules of the enqueuing side's contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = (c for c in config["contracts"] if c["type"] == "forbidden")
    return contract["source_modules"], contract["forbidden_modules"]


# Run in a fresh interpreter: import the module (every module of it, for a package) and
# print which of the forbidden modules came along.
_LOADED = """
import importlib, pkgutil, sys
source, forbidden = sys.argv[1], sys.argv[2:]
module = importlib.import_module(source)
for info in pkgutil.walk_packages(getattr(module, "__path__", []), source + "."):
    importlib.import_module(info.name)
print(" ".join(name for name in forbidden if name in sys.modules))
"""


@pytest.mark.parametrize("source", enqueuing_contract()[0])
def test_the_enqueuing_side_loads_nothing_that_runs_a_task(source: str) -> None:
    """What import-linter cannot see: importing ``a.b.c`` runs ``a/b/__init__.py`` first,
    so a package's face that imports the recorder client loads it into every kick."""
    forbidden = enqueuing_contract()[1]
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, source, *forbidden],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"importing {source} loads what runs a task"


def test_the_recorder_client_library_is_still_found_on_the_package() -> None:
    """``from jobs.recorder import RecorderClient`` (docs/recorder.md): loaded on first use."""
    import jobs.recorder as package
    from jobs.recorder import client, errors, service, wire

    homes = (client, errors, service, wire)
    for name in package.__all__:
        assert any(getattr(package, name) is getattr(m, name, None) for m in homes), name
    with pytest.raises(AttributeError):
        package.RecorderClients  # noqa: B018


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


ARCHITECTURE = ROOT / "docs" / "architecture.md"


def layout_sections(text: str) -> dict[str, str]:
    """The layout block of docs/architecture.md by folder: ``{"core": "...", "jobs/probe":
    "...", ...}``; a folder's entry starts at column 0 (``web/``) or, inside ``jobs/``, at
    column 2 (``probe/``); a file at column 2 (``events.py``) belongs to the folder above::

    >>> layout_sections("```\\njobs/\\n  events.py  x\\n  probe/  job run\\n      row\\n```")
    {'jobs': '  events.py  x\\n', 'jobs/probe': '  probe/  job run\\n      row\\n'}
    """
    block = text.split("```")[1]
    sections: dict[str, str] = {}
    top = current = ""
    for raw in block.splitlines():
        line = raw
        if raw[:1].strip():  # column 0: a top-level entry
            name = raw.split()[0]
            top = current = name.rstrip("/") if name.endswith("/") else ""
            line = raw[len(name) :]
        elif top and raw[:2] == "  " and raw[2:3].strip():  # column 2
            name = raw.split()[0]
            current = f"{top}/{name.rstrip('/')}" if name.endswith("/") else top
        if current and line.strip():
            sections[current] = sections.get(current, "") + line + "\n"
    return sections


def test_the_architecture_names_every_module_in_its_folder() -> None:
    sections = layout_sections(ARCHITECTURE.read_text())
    assert {"core", "storage", "jobs", "jobs/probe", "jobs/queue", "web"} <= set(sections)
    unnamed = []
    modules = [
        path.relative_to(ROOT)
        for name in PACKAGES
        for path in sorted((ROOT / name).rglob("*.py"))
        if path.name != "__init__.py" and "migrations" not in path.parts
    ]
    for module in modules:
        folder = str(module.parent)
        while folder not in sections:  # jobs/probe/kinds/tcp.py: in jobs/probe's entry
            folder = folder.rpartition("/")[0]
        if not re.search(rf"(?<![\w.]){re.escape(module.stem)}\b", sections[folder]):
            unnamed.append(str(module))
    assert len(modules) > 100  # the walk did read the packages
    assert unnamed == [], "docs/architecture.md does not name these modules in their folder"


def test_every_file_the_architecture_names_exists() -> None:
    text = ARCHITECTURE.read_text()
    paths = set(re.findall(r"(?<![\w/.])((?:core|storage|jobs|web|tests)/[\w/]*\w\.py)", text))
    assert len(paths) > 20
    assert sorted(p for p in paths if not (ROOT / p).is_file()) == []
    # a bare file name (`natsurl.py`) is some file of the tree
    names = {path.name for path in ROOT.rglob("*") if ".git" not in path.parts}
    bare = set(re.findall(r"`([\w.]+\.(?:py|js|css|html|svg))`", text))
    assert sorted(bare - names) == []
