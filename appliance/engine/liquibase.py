"""The Liquibase CLI, run against a build cluster, and what its ``update-sql`` plans.

Liquibase is an external program (a JVM), found at ``liquibase_home`` so an air-gapped site can
supply its own distribution and JRE. The password goes in the environment, never in argv
(``ps`` shows argv to every user of the host).

Planning runs ``update-sql`` against a cluster at the base: Liquibase prints, per pending
changeset, a ``-- Changeset <path>::<id>::<author>`` header, the changeset's SQL and the row it
would write to ``databasechangelog`` (whose MD5SUM is the changeset's checksum), and changes
nothing. Everything in that output that varies between runs (the time, the host, the
deployment id) lies outside the changeset's own SQL and is never hashed.
"""
from __future__ import annotations

import hashlib
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
_CHANGELOG_ROW = re.compile(r"^INSERT INTO \S*databasechangelog \((?P<columns>[^)]*)\) VALUES \((?P<values>.*)\);$",
                            re.M | re.I)
_NOISE = re.compile(r"^SET SEARCH_PATH TO .*;$", re.M | re.I)
_TRAILER = re.compile(r"^-- Release Database Lock$", re.M)  # after the last changeset: the lock's release
_SQL_VALUE = re.compile(r"'(?:[^']|'')*'|[^,]+")
_VERSION = re.compile(r"^Liquibase Version: (\S+)$", re.M)
_MANIFEST_VERSION = re.compile(r"^Liquibase-Version: (\S+)\s*$", re.M)


@dataclass(frozen=True)
class Changeset:
    path: str
    id: str
    author: str
    checksum: str | None  # Liquibase's own (e.g. "9:0fd9…"); None if it printed none
    sql: str  # what it would run, without Liquibase's bookkeeping

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
        checksum = None
        if (row := _CHANGELOG_ROW.search(body)) is not None:
            checksum = _column(row["columns"], row["values"], "MD5SUM")
            body = body[:row.start()] + body[row.end():]
        sql = "\n".join(line for line in _NOISE.sub("", body).strip().splitlines() if line.strip())
        changesets.append(Changeset(header["path"], header["id"], header["author"], checksum, sql))
    return changesets


def _end_of_changesets(output: str, start: int) -> int:
    trailer = _TRAILER.search(output, start)
    return trailer.start() if trailer else len(output)


def _column(columns: str, values: str, name: str) -> str | None:
    names = [c.strip().upper() for c in columns.split(",")]
    cells = [v.strip() for v in _SQL_VALUE.findall(values)]
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
