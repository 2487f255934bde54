"""The Liquibase CLI, run against a build cluster, and what its ``update-sql`` plans.

Liquibase is an external program (a JVM), found at ``liquibase_home`` so an air-gapped site can
supply its own distribution and JRE. The password goes in the environment, never in argv
(``ps`` shows argv to every user of the host).

Planning runs ``update-sql`` against a cluster at the base: Liquibase prints, per pending
changeset, a ``-- Changeset <path>::<id>::<author>`` header, the changeset's SQL and the row it
would write to ``databasechangelog`` (whose MD5SUM is the changeset's checksum), and changes
nothing. That row is what the changeset leaves in the database besides its SQL's effects, so
it is kept (:attr:`Changeset.recorded`) without the columns that vary between runs
(``DATEEXECUTED``, ``ORDEREXECUTED``, ``DEPLOYMENT_ID``). Nothing else in that output that varies
between runs (the time, the host) is ever hashed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InvalidArgument, NotFound
from ..isolation.sandbox import Sandbox
from ..shell import Completed, RunAs, Runner
from .liquibase_args import LiquibaseCommand

_HEADER = re.compile(r"^-- Changeset (?P<path>.+?)::(?P<id>.+)::(?P<author>[^:\n]+)$", re.M)
_CHANGELOG_ROW = re.compile(r"^INSERT INTO \S*databasechangelog \((?P<columns>[^)]*)\) VALUES \((?P<values>.*?)\);$",
                            re.M | re.I | re.S)  # a comment may span lines
_NOISE = re.compile(r"^SET SEARCH_PATH TO .*;$", re.M | re.I)
_TRAILER = re.compile(r"^-- Release Database Lock$", re.M)  # after the last changeset: the lock's release
_SQL_VALUE = re.compile(r"\s*('(?:[^']|'')*'|[^,']*?)\s*(?:,|$)")  # one cell of a VALUES list
_VERSION = re.compile(r"^Liquibase Version: (\S+)$", re.M)
_MANIFEST_VERSION = re.compile(r"^Liquibase-Version: (\S+)\s*$", re.M)
PER_RUN_COLUMNS = frozenset({"DATEEXECUTED", "ORDEREXECUTED", "DEPLOYMENT_ID"})  # differ on every run


@dataclass(frozen=True)
class Changeset:
    path: str
    id: str
    author: str
    checksum: str | None  # Liquibase's own (e.g. "9:0fd9…"); None if it printed none
    sql: str  # what it would run, without Liquibase's bookkeeping
    # The databasechangelog row it writes, as canonical JSON {column: value or null}, without
    # PER_RUN_COLUMNS; None if Liquibase printed no row
    recorded: str | None = None

    @property
    def key(self) -> str:
        """What a state is keyed by: the checksum, or the SQL's hash when there is none."""
        return self.checksum or "sql:" + hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def name(self) -> str:
        return f"{self.path}::{self.id}::{self.author}"


def parse_update_sql(output: str) -> list[Changeset]:
    """The pending changesets, in order, from ``update-sql`` output."""
    headers = list(_HEADER.finditer(output))
    changesets = []
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else _end_of_changesets(output, header.end())
        body = output[header.end():end]
        checksum = recorded = None
        if (row := _CHANGELOG_ROW.search(body)) is not None:
            checksum = _column(row["columns"], row["values"], "MD5SUM")
            recorded = _recorded(row["columns"], row["values"])
            body = body[:row.start()] + body[row.end():]
        sql = "\n".join(line for line in _NOISE.sub("", body).strip().splitlines() if line.strip())
        changesets.append(Changeset(header["path"], header["id"], header["author"], checksum, sql, recorded))
    return changesets


def _recorded(columns: str, values: str) -> str:
    """Every column of the row but PER_RUN_COLUMNS: a quoted value unquoted, NULL as null, any
    other cell (a number, a function call) as written. A row this cannot read is kept whole
    (run-varying columns and all): a state that is never shared, rather than a wrong one."""
    names, cells = _names(columns), _cells(values)
    if len(cells) != len(names):
        row = {"(unparsed)": f"({columns}) VALUES ({values})"}
    else:
        row = {name: _cell(cell) for name, cell in zip(names, cells) if name not in PER_RUN_COLUMNS}
    return json.dumps(row, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def _names(columns: str) -> list[str]:
    return [c.strip().upper() for c in columns.split(",")]


def _cells(values: str) -> list[str]:
    """The cells of a VALUES list in order; a comma inside a quoted value stays in it."""
    cells, at = [], 0
    while at < len(values):
        match = _SQL_VALUE.match(values, at)
        if match is None or match.end() == at:
            return []
        cells.append(match[1])
        at = match.end()
    return cells


def _cell(cell: str) -> str | None:
    if cell.startswith("'"):
        return cell[1:-1].replace("''", "'")
    return None if cell.upper() == "NULL" else cell


def _end_of_changesets(output: str, start: int) -> int:
    trailer = _TRAILER.search(output, start)
    return trailer.start() if trailer else len(output)


def _column(columns: str, values: str, name: str) -> str | None:
    names, cells = _names(columns), _cells(values)
    if name not in names or len(cells) != len(names):
        return None
    cell = cells[names.index(name)]
    return cell[1:-1].replace("''", "'") if cell.startswith("'") else None


@dataclass(frozen=True)
class Connection:
    jdbc_url: str
    username: str
    password: str | None = None


class LiquibaseCli:
    """Liquibase reads what a changelog names (``sqlFile``, ``loadData``, includes), and a
    relative path may climb out of the source; so it runs as an unprivileged OS user
    (``run_as``), which cannot read the appliance's secrets or any org's databases. It never
    reads a ``liquibase.properties`` from the source: that file could name a classpath and a
    driver class, i.e. run a jar of the user's choosing."""

    def __init__(self, runner: Runner, home: Path, *, java_opts: str = "", java_home: Path | None = None,
                 run_as: RunAs | None = None, sandbox: Sandbox | None = None):
        self.runner, self.home, self.java_opts, self.java_home = runner, Path(home), java_opts, java_home
        self.run_as = run_as
        self.sandbox = sandbox or Sandbox(False)
        self._version: tuple[float, str] | None = None

    @property
    def launcher(self) -> Path:
        return self.home / "liquibase"

    @property
    def where(self) -> str:
        return f"on the host ({self.home})"

    def health(self) -> str:
        if not self.launcher.is_file():
            return f"error: no Liquibase at {self.launcher} (set liquibase_home)"
        return "ok"

    def version(self) -> str:
        """The distribution's version (part of every Liquibase state's key): read from its core
        jar's manifest, which is what ``--version`` prints, without a JVM start; asked of the
        CLI only for a distribution laid out otherwise."""
        stamp = self._stamp()
        if self._version is None or self._version[0] != stamp:
            self._version = (stamp, self._manifest_version() or self._cli_version())
        return self._version[1]

    def _manifest_version(self) -> str | None:
        for jar in (self.home / "internal" / "lib" / "liquibase-core.jar", self.home / "lib" / "liquibase-core.jar"):
            try:
                with zipfile.ZipFile(jar) as archive:
                    manifest = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
            except (OSError, KeyError, zipfile.BadZipFile):
                continue
            if found := _MANIFEST_VERSION.search(manifest):
                return found[1]
        return None

    def _cli_version(self) -> str:
        out = self.runner([str(self.launcher), "--version"], env=self._env(None), cwd="/").stdout
        found = _VERSION.search(out)
        if found is None:
            raise InvalidArgument(f"cannot tell the version of the Liquibase at {self.home}")
        return found[1]

    def run(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, sql_only: bool = False,
            cancel: Callable[[], bool] | None = None, timeout: float | None = None,
            run_as: RunAs | None = None, source: Path | None = None) -> Completed:
        """``run_as``: the org's OS identity (default ``liquibase_os_user``); ``source``: the job's
        source root, the only host files besides Liquibase and the JRE its sandbox shows."""
        argv = [str(self.launcher), *self.arguments(command, connection, sql_only)]
        if self.sandbox.enabled:
            argv = self.sandbox.client(argv, cwd=cwd, network=True,  # JDBC speaks TCP only
                                       read_only=[source or cwd, self.home, *self._java_dirs()])
        return self.runner(argv, env=self._env(connection.password), cwd="/" if self.sandbox.enabled else cwd,
                           cancel=cancel, timeout=timeout, run_as=run_as or self.run_as)

    def _java_dirs(self) -> list[Path]:
        """The JRE, when it lives outside /usr (which every sandbox shows)."""
        home = self.java_home
        return [home] if home is not None and not str(Path(home).resolve()).startswith("/usr/") else []

    @staticmethod
    def arguments(command: LiquibaseCommand, connection: Connection, sql_only: bool) -> list[str]:
        return ["--defaults-file=/dev/null", f"--url={connection.jdbc_url}", f"--username={connection.username}",
                "--show-banner=false", *command.argv(sql_only=sql_only)]

    def plan(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, **kw) -> list[Changeset]:
        return parse_update_sql(self.run(command, connection, cwd=cwd, sql_only=True, **kw).stdout)

    def _stamp(self) -> float:
        try:
            return self.launcher.stat().st_mtime
        except FileNotFoundError:
            raise NotFound(f"no Liquibase at {self.launcher} (set liquibase_home)") from None

    def _env(self, password: str | None) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "JAVA_OPTS": self.java_opts,
               "HOME": "/tmp" if self.run_as or self.sandbox.enabled else os.environ.get("HOME", "/")}
        if self.java_home is not None:
            env["JAVA_HOME"] = str(self.java_home)
        if password is not None:
            env["LIQUIBASE_COMMAND_PASSWORD"] = password
        return env
