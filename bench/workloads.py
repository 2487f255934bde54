"""The two workloads the bench prepares: the same two scripts feed the rebuild and the API.

The large one generates its rows in SQL (no data files to ship) and is sized so the table's
heap alone is at least 1 GiB; the bench checks that on the rebuilt cluster.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# About 241 bytes of heap per row (tuple header + int + two texts of 33 and 164 bytes).
LARGE_ROWS = 4_600_000
SMALL_ROWS = 20_000  # about 5 MB


@dataclass(frozen=True)
class Workload:
    name: str  # "small" | "large"
    rows: int
    scripts_dir: Path

    @property
    def psql_args(self) -> list[str]:
        return ["-f", "schema.sql", "-f", "data.sql"]


def write_workload(name: str, rows: int, parent: Path) -> Workload:
    """Two scripts in a directory the unprivileged Postgres user can read."""
    directory = parent / f"{name}-scripts"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    (directory / "schema.sql").write_text(
        "create table big (id int primary key, h text not null, payload text not null);\n")
    (directory / "data.sql").write_text(
        "insert into big select g, md5(g::text), repeat(md5(g::text), 5)\n"
        f"from generate_series(1, {rows}) g;\n")
    for script in directory.iterdir():
        script.chmod(0o644)
    return Workload(name, rows, directory)
