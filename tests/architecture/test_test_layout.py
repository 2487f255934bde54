"""The tests' own layout: shared helpers live in ``tests/support`` (see its docstring), conftest
modules hold fixtures and pytest hooks only, and no module imports a conftest module or a test
module. A fixture used across modules is a fixture in the nearest common conftest.py, which pytest
finds by name, never something to import.

Every import counts — at module level and inside a function alike.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module ``path`` imports, relative imports resolved, and of
    every name a ``from … import`` takes (it may be a module: ``from tests import test_docs``)."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _is_conftest_or_test_module(dotted: str) -> bool:
    last = dotted.rsplit(".", 1)[-1]
    return dotted.startswith("tests.") and (last == "conftest" or last.startswith("test_"))


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
        if isinstance(target, ast.Name) and target.id == "fixture":
            return True
    return False


def import_violations(path: Path) -> list[str]:
    return [f"{path.relative_to(TESTS.parent)}:{line} imports {dotted}"
            for line, dotted in _imported_modules(path) if _is_conftest_or_test_module(dotted)]


def conftest_violations(path: Path) -> list[str]:
    """Public functions and classes of a conftest module that are neither fixtures nor pytest hooks."""
    bad = []
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("_") or node.name.startswith("pytest_") or _is_fixture(node):
                continue
        elif isinstance(node, ast.ClassDef):
            if node.name.startswith("_"):
                continue
        else:
            continue
        bad.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} defines {node.name} (a helper: tests/support)")
    return bad


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_module_imports_a_conftest_or_a_test_module(path: Path):
    assert import_violations(path) == []


@pytest.mark.parametrize("path", sorted(TESTS.rglob("conftest.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_a_conftest_defines_fixtures_and_hooks_only(path: Path):
    assert conftest_violations(path) == []


def test_the_support_package_says_what_lives_in_it():
    import tests.support
    listed = tests.support.__doc__ or ""
    missing = [p.stem for p in sorted(SUPPORT.glob("*.py")) if p.stem != "__init__" and f"``{p.stem}``" not in listed]
    assert missing == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path, monkeypatch):
    """Each rule fails on a module breaking it (so a green run means something)."""
    fake = tmp_path / "tests"
    (fake / "e2e").mkdir(parents=True)
    module = fake / "e2e" / "test_example.py"
    module.write_text("from .conftest import psql\nfrom .test_other import executes\n"
                      "def test_x():\n    from tests.conftest import free_tcp_port\n")
    conftest = fake / "e2e" / "conftest.py"
    conftest.write_text("import pytest\n\n@pytest.fixture\ndef fine():\n    pass\n\n"
                        "def pytest_configure(config):\n    pass\n\ndef _private():\n    pass\n\n"
                        "def helper():\n    pass\n\nclass Helper:\n    pass\n")
    monkeypatch.setitem(globals(), "TESTS", fake)
    assert [v.split(" imports ")[1] for v in import_violations(module)] == [
        "tests.e2e.conftest", "tests.e2e.test_other", "tests.conftest"]
    assert [v.split(" defines ")[1].split()[0] for v in conftest_violations(conftest)] == ["helper", "Helper"]
