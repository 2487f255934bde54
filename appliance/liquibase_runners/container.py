"""Liquibase in a container (``liquibase_runner = "docker"``), for workers on container runtimes.

The container sees the job's source (read-only, at the same path) and nothing else of the host:
a ``../`` path in a changelog finds the image's files only. It shares the host's network, where
the build cluster listens on loopback, runs as ``nobody`` with every capability dropped, and
gets the password through the environment, by name (``-e NAME``), so it never appears in argv.
The image comes from ``scripts/build-liquibase-image``; its ``LIQUIBASE_VERSION`` is what
states are keyed by.
"""
from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable
from pathlib import Path

from appliance.errors import CommandFailed, InvalidArgument, NotFound
from appliance.liquibase_runners.base import Connection
from appliance.liquibase_runners.host import MAIN_CLASS, LiquibaseCli
from appliance.planning.liquibase.args import LiquibaseCommand
from appliance.shell import Completed, RunAs, Runner, cancellable

LABEL = "sqlrs.purpose=liquibase"


class ContainerLiquibase(LiquibaseCli):
    def __init__(self, runner: Runner, image: str, *, java_opts: str = ""):
        super().__init__(runner, Path("/opt/liquibase"), java_opts=java_opts)
        self.image = image
        self._image_version: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return f"in a container of {self.image}"

    def command(self) -> list[str]:
        """The image's JVM on Liquibase's command line class with the distribution's jars (a
        class path of whole directories: the image's file names are not known here), never the
        image's launcher, which would also load the jars of the source's ``liquibase_libs``."""
        home = self.home
        return ["java", *shlex.split(self.java_opts), "-cp", f"{home}/internal/lib/*:{home}/lib/*", MAIN_CLASS]

    def health(self) -> str:
        try:
            self._inspect()
        except NotFound as exc:
            return f"error: {exc}"
        return "ok"

    def version(self) -> str:
        image_id, env = self._inspect()
        if self._image_version is None or self._image_version[0] != image_id:
            found = next((line.split("=", 1)[1] for line in env if line.startswith("LIQUIBASE_VERSION=")), None)
            if not found:
                raise InvalidArgument(f"image {self.image} does not say its LIQUIBASE_VERSION; "
                                      "build it with scripts/build-liquibase-image")
            self._image_version = (image_id, found)
        return self._image_version[1]

    def run(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, sql_only: bool = False,
            cancel: Callable[[], bool] | None = None, timeout: float | None = None,
            run_as: RunAs | None = None, source: Path | None = None) -> Completed:
        """As the org's OS identity (``run_as``; default nobody), seeing the job's source only."""
        name = f"sqlrs-liquibase-{secrets.token_hex(6)}"
        work = str(Path(cwd).resolve())
        root = str(Path(source).resolve()) if source is not None else work
        user = f"{run_as.uid}:{run_as.gid}" if run_as is not None else "nobody"
        argv = ["docker", "run", "--rm", "--name", name, "--label", LABEL, "--network", "host",
                "--user", user, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp", "-e", f"JAVA_OPTS={self.java_opts}",
                "-v", f"{root}:{root}:ro", "-w", work]
        if connection.password is not None:
            argv += ["-e", "LIQUIBASE_COMMAND_PASSWORD"]
        argv += [self.image, *self.command(), *self.arguments(command, connection, sql_only)]
        try:
            return self.runner(argv, env=self._env(connection.password), cwd="/", cancel=cancel, timeout=timeout)
        except BaseException:
            with cancellable(None):  # a killed `docker run` leaves its container running
                self.runner(["docker", "rm", "-f", name], check=False)
            raise

    def _inspect(self) -> tuple[str, list[str]]:
        try:
            out = self.runner(["docker", "image", "inspect", "-f",
                               "{{.Id}}{{range .Config.Env}}\n{{.}}{{end}}", self.image]).stdout
        except CommandFailed:
            raise NotFound(f"no Liquibase image {self.image} (build it with scripts/build-liquibase-image)") from None
        image_id, *env = out.strip().splitlines()
        return image_id, env
