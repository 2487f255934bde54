"""The Liquibase CLI on the host, run against a build cluster.

Liquibase is an external program (a JVM), found at ``liquibase_home`` so an air-gapped site can
supply its own distribution and JRE. The password goes in the environment, never in argv
(``ps`` shows argv to every user of the host).

The JVM is started straight on Liquibase's command line class, with the jars a PostgreSQL build
uses (:meth:`LiquibaseCli.command`), rather than through the distribution's launcher: that one
puts every jar of ``internal/lib`` on the class path (the drivers of a dozen other databases, one
of them 68 MB, and the commercial extension, which needs a licence), and scanning them is about
half of a short run; it also loads any jar in a ``liquibase_libs`` directory of the working
directory, which must never be a tenant's source.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from appliance.errors import ApplianceError, InvalidArgument, NotFound
from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import Connection
from appliance.planning.liquibase.args import LiquibaseCommand
from appliance.planning.liquibase.update_sql import Changeset, parse_update_sql
from appliance.shell import Completed, RunAs, Runner, cancel_check, child_env

_VERSION = re.compile(r"^Liquibase Version: (\S+)$", re.M)
MAIN_CLASS = "liquibase.integration.commandline.LiquibaseCommandLine"
QUIET_JVM = ["-Xlog:disable"]  # no JVM notice (an archive that does not match, say) among what Liquibase prints
CLASS_ARCHIVE_SECONDS = 120
# What the archive's making run reads: the appliance's own changelog, in the formats tenants use.
TRAINING_CHANGELOG = {
    "changelog.xml": """<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
    http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
  <changeSet id="1" author="sqlrs"><createTable tableName="t"><column name="id" type="int"/></createTable></changeSet>
  <include file="more.yaml" relativeToChangelogFile="true"/>
  <include file="more.sql" relativeToChangelogFile="true"/>
  <include file="more.json" relativeToChangelogFile="true"/>
</databaseChangeLog>
""",
    "more.yaml": """databaseChangeLog:
  - changeSet:
      id: 2
      author: sqlrs
      changes:
        - addColumn:
            tableName: t
            columns:
              - column: {name: name, type: text}
""",
    "more.sql": "--liquibase formatted sql\n--changeset sqlrs:3\ncreate index t_name on t (name);\n",
    "more.json": """{"databaseChangeLog": [{"changeSet": {"id": "4", "author": "sqlrs", "changes": [
  {"insert": {"tableName": "t", "columns": [{"column": {"name": "id", "valueNumeric": 1}}]}}]}}]}
""",
}
# Jars of internal/lib a PostgreSQL build never needs (by name prefix): other databases' JDBC
# drivers and the commercial extension. A jar not named here stays on the class path.
UNUSED_JARS = ("h2", "hsqldb", "jaybird", "jcc", "mariadb-java-client", "mssql-jdbc", "ojdbc", "snowflake-jdbc",
               "sqlite-jdbc", "liquibase-commercial")
log = logging.getLogger(__name__)
_MANIFEST_VERSION = re.compile(r"^Liquibase-Version: (\S+)\s*$", re.M)


def _never() -> bool:
    return False


class LiquibaseCli:
    """Liquibase reads what a changelog names (``sqlFile``, ``loadData``, includes), and a
    relative path may climb out of the source; so it runs as an unprivileged OS user
    (``run_as``), which cannot read the appliance's secrets or any org's databases. It never
    reads a ``liquibase.properties`` from the source: that file could name a classpath and a
    driver class, i.e. run a jar of the user's choosing."""

    def __init__(self, runner: Runner, home: Path, *, java_opts: str = "", java_home: Path | None = None,
                 run_as: RunAs | None = None, sandbox: Sandbox | None = None, class_archives: Path | None = None):
        """``class_archives``: where the appliance keeps the class-data-sharing archives of its
        Liquibase JVMs (:meth:`_class_archive`); None starts every JVM without one."""
        self.runner, self.home, self.java_opts, self.java_home = runner, Path(home), java_opts, java_home
        self.run_as, self.class_archives = run_as, class_archives
        self.sandbox = sandbox or Sandbox(False)
        self._version: tuple[float, str] | None = None
        self._command: tuple[float, list[str]] | None = None

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

    def command(self) -> list[str]:
        """The start of every Liquibase argv: the JVM on Liquibase's command line class, its class
        path the distribution's jars minus :data:`UNUSED_JARS`, plus the operator's extensions in
        ``lib``; the distribution's launcher when it is laid out otherwise (no
        ``internal/lib/liquibase-core.jar`` holding that class) or no ``java`` is found."""
        try:
            stamp = self.launcher.stat().st_mtime  # an upgraded distribution is looked at again
        except FileNotFoundError:
            stamp = 0.0  # the run says what is missing
        if self._command is None or self._command[0] != stamp:
            self._command = (stamp, self._direct_command() or [str(self.launcher)])
        return self._command[1]

    def _direct_command(self) -> list[str] | None:
        internal = self.home / "internal" / "lib"
        java = str(self.java_home / "bin" / "java") if self.java_home is not None else shutil.which("java")
        if java is None or not _holds_class(internal / "liquibase-core.jar", MAIN_CLASS):
            return None
        jars = [jar for jar in sorted(internal.glob("*.jar")) if not jar.name.startswith(UNUSED_JARS)]
        jars += sorted((self.home / "lib").glob("*.jar"))
        jvm = [java, *shlex.split(self.java_opts), "-cp", ":".join(str(jar) for jar in jars)]
        archive = self._class_archive(jvm)
        return [*jvm, *([f"-XX:SharedArchiveFile={archive}", *QUIET_JVM] if archive else []), MAIN_CLASS]

    def _class_archive(self, jvm: list[str]) -> Path | None:
        """A class-data-sharing archive of the classes a Liquibase run loads: a JVM that maps it
        starts about a third faster. Made once per JVM, class path and options, by the appliance
        from a changelog of its own (never a tenant's), then only read (0644, bound read-only
        into the sandbox). None, and every run starts without one, if it cannot be made."""
        if self.class_archives is None:
            return None
        archive = self.class_archives / f"{hashlib.sha256(json.dumps(jvm).encode()).hexdigest()[:24]}.jsa"
        if not archive.is_file():
            try:
                self._make_class_archive(jvm, archive)
            except (ApplianceError, OSError) as exc:
                log.warning("no class-data-sharing archive for Liquibase (%s); its runs start without one", exc)
                return None
        return archive

    def _make_class_archive(self, jvm: list[str], archive: Path) -> None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.parent.chmod(0o755)  # whatever the umask: every org's sandbox reads the archive
        with tempfile.TemporaryDirectory(dir=archive.parent) as scratch:
            work = Path(scratch)
            for name, text in TRAINING_CHANGELOG.items():
                (work / name).write_text(text)
            made = work / "archive.jsa"
            self.runner([*jvm, f"-XX:ArchiveClassesAtExit={made}", *QUIET_JVM, MAIN_CLASS, "--show-banner=false",
                         "--url=offline:postgresql", "--changelog-file=changelog.xml", "update-sql"],
                        env=self._env(None), cwd=work, timeout=CLASS_ARCHIVE_SECONDS)
            made.chmod(0o644)
            os.replace(made, archive)  # whole or not at all, whoever makes it at the same time

    def _cli_version(self) -> str:
        out = self.runner([*self.command(), "--version"], env=self._env(None), cwd="/").stdout
        found = _VERSION.search(out)
        if found is None:
            raise InvalidArgument(f"cannot tell the version of the Liquibase at {self.home}")
        return found[1]

    def run(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, sql_only: bool = False,
            cancel: Callable[[], bool] | None = None, timeout: float | None = None,
            run_as: RunAs | None = None, source: Path | None = None) -> Completed:
        """``run_as``: the org's OS identity (default ``liquibase_os_user``); ``source``: the job's
        source root, the only host files besides Liquibase and the JRE its sandbox shows."""
        start = self.command()
        argv = [*start, *self.arguments(command, connection, sql_only)]
        if self.sandbox.enabled:
            archives = [Path(arg.split("=", 1)[1]) for arg in start if arg.startswith("-XX:SharedArchiveFile=")]
            argv = self.sandbox.client(argv, cwd=cwd, network=True,  # JDBC speaks TCP only
                                       read_only=[source or cwd, self.home, *self._java_dirs(), *archives])
        # Always with a cancel check, so a timeout kills the process group: the launcher is a
        # shell script that starts the JVM as its child, which outlives the script otherwise.
        cancel = cancel or cancel_check() or _never
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
        home = "/tmp" if self.run_as or self.sandbox.enabled else os.environ.get("HOME", "/")
        java_home = str(self.java_home) if self.java_home is not None else None
        return child_env(lang="C.UTF-8", home=home, JAVA_OPTS=self.java_opts, JAVA_HOME=java_home,
                         LIQUIBASE_HOME=str(self.home), LIQUIBASE_COMMAND_PASSWORD=password)


def _holds_class(jar: Path, class_name: str) -> bool:
    try:
        with zipfile.ZipFile(jar) as archive:
            archive.getinfo(class_name.replace(".", "/") + ".class")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return True
