"""ruff and mypy pass on the tree (``make test`` runs them first; these tests say so too), and
each fails on a throwaway mistake with the project's own configuration."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import appliance

ROOT = Path(appliance.__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=ROOT,
                          capture_output=True, text=True)


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True)


def throwaway(tmp_path: Path, text: str) -> Path:
    """A module inside the package (so the package's rules apply to it), removed afterwards by the caller."""
    path = ROOT / "appliance" / "planning" / f"_throwaway_{tmp_path.name}.py"
    path.write_text(text)
    return path


def test_ruff_passes_on_the_tree():
    result = ruff(".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_fails_on_an_unused_import(tmp_path):
    path = throwaway(tmp_path, "import os\n")
    try:
        result = ruff(str(path.relative_to(ROOT)))
    finally:
        path.unlink()
    assert result.returncode == 1 and "F401" in result.stdout


def test_mypy_passes_on_the_tree():
    result = mypy()
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_fails_on_a_type_error(tmp_path):
    path = throwaway(tmp_path, "from appliance.ids import valid_org\n\nvalid_org('default').no_such_method()\n")
    try:
        result = mypy(str(path.relative_to(ROOT)))
    finally:
        path.unlink()
    assert result.returncode == 1 and "[attr-defined]" in result.stdout


def test_mypy_is_strict_on_the_pure_layer(tmp_path):
    path = throwaway(tmp_path, "def untyped(x):\n    return x\n")
    try:
        result = mypy(str(path.relative_to(ROOT)))
    finally:
        path.unlink()
    assert result.returncode == 1 and "[no-untyped-def]" in result.stdout


def test_mypy_holds_each_driver_to_its_protocol(tmp_path):
    """A driver that lacks a method of its family's Protocol is refused where it is declared one."""
    path = throwaway(tmp_path, (
        "from appliance.liquibase_runners.base import LiquibaseRunner\n\n\n"
        "class Half:\n    where = 'nowhere'\n\n    def health(self) -> str:\n        return 'ok'\n\n\n"
        "runner: LiquibaseRunner = Half()\n"))
    try:
        result = mypy(str(path.relative_to(ROOT)))
    finally:
        path.unlink()
    assert result.returncode == 1 and "[assignment]" in result.stdout
