"""The data flow as an import rule: import-linter's contracts ([tool.importlinter] in
pyproject.toml) hold on the loader, and they would catch a stage importing a later
one, a circle, or I/O in the extraction."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import loader
from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
    )


def test_the_loader_keeps_its_layer_contracts():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        (  # a stage importing a later one
            "loader/dicom/decode.py",
            "import loader.extract.values  # noqa",
            "loader.dicom is not allowed to import loader.extract:",
        ),
        (  # a circle
            "loader/warehouse/merge.py",
            "import loader.warehouse.duckdb  # noqa",
            "No cycles are allowed in loader.warehouse",
        ),
        (  # I/O in the extraction
            "loader/extract/values.py",
            "import loader.sources.storage  # noqa",
            "loader.extract is not allowed to import loader.sources:",
        ),
    ],
    ids=["later-stage", "circle", "io-in-extraction"],
)
def test_one_bad_import_breaks_a_contract(tmp_path, module, line, broken):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "loader", root / "loader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    path = root / module
    text = path.read_text()
    at = text.index("\nfrom loader")  # among the module's own imports
    path.write_text(text[:at] + "\n" + line + text[at:])
    done = _lint(root)
    assert done.returncode == 1
    assert broken in done.stdout


def test_every_module_is_reached_by_its_dotted_name():
    """No name a package exports hides a module of it: `loader.run` is the Python
    API's function, so the orchestration package is `loader.jobs`; `import a.b.c as m`
    and patching by dotted path would otherwise reach the function, not the module."""
    hidden = []
    for info in pkgutil.walk_packages(loader.__path__, "loader."):
        if info.name.endswith("__main__"):  # runs the command when imported
            continue
        module = importlib.import_module(info.name)
        reached: object = loader
        for part in info.name.split(".")[1:]:
            reached = getattr(reached, part, None)
        if reached is not module:
            hidden.append(info.name)
    assert not hidden
