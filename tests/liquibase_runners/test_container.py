"""The container driver's own ways (liquibase_runner = docker): the image, the container's
name, label and confinement, and its removal."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.errors import CommandTimedOut
from appliance.liquibase_runners.base import Connection
from appliance.liquibase_runners.container import LABEL, ContainerLiquibase
from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.shell import Completed
from tests.support.liquibase import Recording
from tests.support.recording import RecordingRunner

UPDATE = parse_liquibase_args(["update", "--changelog-file=changelog.sql"])


def docker_run(tmp_path: Path, connection: Connection) -> list[str]:
    """The ``docker run`` argv the driver builds, from a stand-in engine."""
    shell = RecordingRunner({("docker", "run"): lambda argv: Completed(argv, 0, "", "")})
    ContainerLiquibase(shell, "sqlrs/liquibase:test").run(UPDATE, connection, cwd=tmp_path)
    (argv,) = shell.calls
    return argv


def test_the_password_goes_to_the_container_by_name(tmp_path):
    argv = docker_run(tmp_path, Connection("jdbc:postgresql://127.0.0.1:5432/db", "postgres", "s3cret"))
    at = argv.index("LIQUIBASE_COMMAND_PASSWORD")
    assert argv[at - 1] == "-e" and at < argv.index("sqlrs/liquibase:test")


def test_the_container_is_labelled_and_runs_as_nobody_without_capabilities(tmp_path):
    argv = docker_run(tmp_path, Connection("jdbc:postgresql://127.0.0.1:5432/db", "postgres"))
    assert argv[argv.index("--label") + 1] == LABEL and argv[argv.index("--user") + 1] == "nobody"
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and "--read-only" in argv


def test_a_container_killed_at_its_timeout_is_removed(container_driver, runner, empty_database, sleeping_project):
    spy = Recording(runner)
    with pytest.raises(CommandTimedOut):
        container_driver.open(spy).run(UPDATE, empty_database, cwd=sleeping_project, timeout=3)
    (name,) = [argv[argv.index("--name") + 1] for argv, _ in spy.calls if argv[:2] == ["docker", "run"]]
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{name}$"], capture_output=True, text=True,
                          check=True)
    assert left.stdout.strip() == ""
