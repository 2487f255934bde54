"""The layering contract: each part of ``appliance`` imports only parts below it (README, "Layout").

Every import counts — at module level, inside a function, and under ``TYPE_CHECKING`` — since a
lazy import is still a dependency, only a hidden one. Parts on one line are siblings: they may
not import each other. Inside one part, modules import each other freely.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import appliance

ROOT = Path(appliance.__file__).parent

# Bottom to top. A part is a package or a top-level module of ``appliance``.
LAYERS: list[tuple[str, ...]] = [
    ("console",),  # the web console's files: imports nothing
    ("logs",),
    ("errors",),
    ("ids",),
    ("shell",),
    ("connections",),
    ("settings",),
    ("certificates",),  # the appliance's own CA
    ("faults",),
    ("planning",),  # pure: request -> content-addressed steps
    ("isolation",),
    ("storage",),
    ("runtime",),
    ("liquibase_runners",),
    ("control",),
    ("objectstore",),
    ("context",),  # the wiring: settings -> drivers, Control DB
    ("sources", "instances", "job_artifacts", "transfer"),
    ("orchestrator",),
    ("build",),  # the worker side: running a job
    ("api", "cli"),
    ("service",),
]
# The CLI ships to users' machines: beside the foundation it may use only the pure planning.
CLI_MAY_IMPORT = {"logs", "errors", "ids", "planning", "cli"}  # and the client package, sqlrs_client

RANK = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(("appliance", *parts)), path))
    return found


def is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(module: str, path: Path) -> set[str]:
    """Every ``appliance`` module ``module`` imports, relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else [])
            target = ".".join(base + ([node.module] if node.module else []))
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if is_module(f"{target}.{alias.name}"))
    return {name for name in names if name == "appliance" or name.startswith("appliance.")}


def part_of(module: str) -> str | None:
    """``appliance.runtime.docker`` -> ``runtime``; the package root (``appliance``, its
    ``__version__``) -> None."""
    parts = module.split(".")
    return None if len(parts) == 1 or parts[1].startswith("__") else parts[1]


def violations() -> list[str]:
    found = []
    for module, path in modules():
        here = part_of(module)
        for target in sorted(imported(module, path)):
            there = part_of(target)
            if there is None or there == here:
                continue
            if here == "cli" and there not in CLI_MAY_IMPORT:
                found.append(f"{module} imports {target}: the CLI uses the foundation and planning only")
            elif RANK[there] >= RANK[here]:
                how = "a sibling" if RANK[there] == RANK[here] else "a layer above"
                found.append(f"{module} imports {target}: {there} is {how} {here}")
    return found


def test_every_part_of_the_appliance_has_a_place_in_the_layers():
    parts = {part_of(module) for module, _ in modules()} - {None}
    parts |= {part_of(target) for module, path in modules() for target in imported(module, path)} - {None}
    assert parts <= set(RANK), f"not in LAYERS: {sorted(parts - set(RANK))}"


def test_no_part_imports_a_part_above_it_or_beside_it():
    assert violations() == []


def test_the_check_finds_a_backward_import(tmp_path, monkeypatch):
    """The contract bites: a throwaway import of the API from the planning layer is reported."""
    module = ROOT / "planning" / "_throwaway_backward_import.py"
    module.write_text("from appliance.api.app import create_app\n")
    try:
        assert violations() == ["appliance.planning._throwaway_backward_import imports appliance.api.app: "
                                "api is a layer above planning"]
    finally:
        module.unlink()


def test_the_rq_entry_points_call_the_worker_side_and_nothing_above_it():
    """``jobs`` (outside the package: the queue names its functions as strings) sits on ``build``."""
    above = {part for part in RANK if RANK[part] > RANK["build"]}
    found = [f"{path.name} imports {target}" for path in sorted((ROOT.parent / "jobs").glob("*.py"))
             for target in imported(f"jobs.{path.stem}", path) if part_of(target) in above]
    assert found == []


@pytest.mark.parametrize("package", sorted({p.parent for p in ROOT.rglob("__init__.py")}), ids=str)
def test_every_package_says_what_lives_there_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert "May import" in doc, f"{package}/__init__.py: no 'May import:' line in its docstring"


# The client package (``sqlrs_client``, beside ``appliance``) ships to programs and test suites:
# of the appliance it uses the pure planning (to pack bundles as the server reads them) and the
# foundation that planning stands on, never a part that runs on the server.
CLIENT = ROOT.parent / "sqlrs_client"
CLIENT_MAY_IMPORT = {"logs", "errors", "ids", "planning"}


def client_violations() -> list[str]:
    found = []
    for path in sorted(CLIENT.rglob("*.py")):
        parts = path.relative_to(CLIENT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found += [f"{module} imports {target}: the client uses the appliance's planning and foundation only"
                  for target in sorted(imported(module, path))
                  if part_of(target) is not None and part_of(target) not in CLIENT_MAY_IMPORT]
    return found


def test_the_client_package_uses_only_the_appliance_planning_and_foundation():
    assert client_violations() == []


def test_the_client_check_finds_a_server_import():
    module = CLIENT / "_throwaway_server_import.py"
    module.write_text("from appliance.control.models import Task\n")
    try:
        assert client_violations() == ["sqlrs_client._throwaway_server_import imports appliance.control.models: "
                                       "the client uses the appliance's planning and foundation only"]
    finally:
        module.unlink()
