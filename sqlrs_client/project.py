"""A repository's own word on how its database is prepared: ``sqlrs.toml`` (or a
``[tool.sqlrs]`` table in ``pyproject.toml``), found in the working directory or the nearest
directory above it that has one. ``sqlrs init`` writes it; ``sqlrs run``, the composite
commands and the pytest plugin read it.

    # sqlrs.toml
    prepare = "psql"                      # or "lb" (Liquibase)
    args = ["-f", "schema.sql", "-f", "seed.sql"]
    dir = "db"                            # psql's working directory / the Liquibase project
    image = "postgres:15"                 # optional
    url = "http://appliance.internal:7433"  # optional: SQLRS_URL and --url win

``dir`` is relative to the file's directory and stays inside it.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlrs_client.errors import InvalidInput

if TYPE_CHECKING:
    from sqlrs_client.prepare import PrepareRequest

FILE_NAME = "sqlrs.toml"
KINDS = ("psql", "lb")
KEYS = frozenset({"prepare", "args", "dir", "image", "url"})
DEFAULT_IMAGE = "postgres:15"


@dataclass(frozen=True)
class Project:
    """How this repository's database is prepared."""
    root: Path  # the directory of the file that says so
    kind: str
    args: tuple[str, ...]
    dir: str = "."
    image: str = DEFAULT_IMAGE
    url: str | None = None
    source: Path = field(default=Path(FILE_NAME), compare=False)  # the file it was read from

    @property
    def work_dir(self) -> Path:
        return self.root / self.dir

    def request(self, **options: Any) -> PrepareRequest:
        """The prepare request this project describes (its files packed); ``options`` as for
        :func:`sqlrs_client.prepare.psql_request` (``ttl_seconds``, ``name``, ``plan_only``, …)."""
        from sqlrs_client.prepare import liquibase_request, psql_request  # the packing, only when asked
        options.setdefault("image", self.image)
        if self.kind == "psql":
            return psql_request(list(self.args), cwd=self.work_dir, **options)
        return liquibase_request(list(self.args), self.work_dir, **options)

    def to_toml(self) -> str:
        lines = [f"prepare = {_toml(self.kind)}", f"args = [{', '.join(_toml(a) for a in self.args)}]",
                 f"dir = {_toml(self.dir)}", f"image = {_toml(self.image)}"]
        if self.url:
            lines.append(f"url = {_toml(self.url)}")
        return "\n".join(lines) + "\n"


def find(start: Path | str = ".") -> Project | None:
    """The project of ``start`` or the nearest directory above it that declares one; None."""
    here = Path(start).resolve()
    for directory in (here, *here.parents):
        if (directory / FILE_NAME).is_file():
            return load(directory / FILE_NAME)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("sqlrs")
            if table is not None:
                return parse(table, directory, pyproject)
    return None


def load(path: Path) -> Project:
    return parse(_read(path), path.parent, path)


def parse(values: Any, root: Path, source: Path) -> Project:
    """Checked key by key: an unknown key or a wrong type names the file and the key."""
    if not isinstance(values, dict):
        raise InvalidInput(f"{source}: the sqlrs settings must be a table")
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise InvalidInput(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    kind = values.get("prepare")
    if kind not in KINDS:
        raise InvalidInput(f"{source}: prepare must be one of {', '.join(KINDS)}, not {kind!r}")
    args = values.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args) or not args:
        raise InvalidInput(f"{source}: args must be a non-empty list of strings")
    for key in ("dir", "image", "url"):
        if key in values and not isinstance(values[key], str):
            raise InvalidInput(f"{source}: {key} must be a string")
    directory = values.get("dir", ".")
    resolved = (root / directory).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InvalidInput(f"{source}: dir {directory!r} leaves {root}")
    return Project(root=root, kind=kind, args=tuple(args), dir=directory, image=values.get("image", DEFAULT_IMAGE),
                   url=values.get("url"), source=source)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def _toml(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
