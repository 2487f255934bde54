"""The real Liquibase in its container (liquibase_runner = docker) against a real PostgreSQL."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.liquibase_runners.container import ContainerLiquibase
from appliance.errors import CommandFailed, CommandTimedOut
from appliance.settings import Settings
from tests.support.docker import ensure_liquibase_image, require_docker

from tests.support.tmpdirs import public_tmpdir

from tests.support.liquibase import MIXED, plan


@pytest.fixture
def project():
    """As the appliance keeps sources: readable by anyone (the container runs as nobody)."""
    base = public_tmpdir("sqlrs-lb-project-")
    shutil.copytree(MIXED, base / "db")
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def in_container(runner) -> ContainerLiquibase:
    require_docker()
    image = Settings.model_fields["liquibase_image"].default
    ensure_liquibase_image(image)
    return ContainerLiquibase(runner, image, java_opts=Settings.model_fields["liquibase_java_opts"].default)


def test_the_version_is_the_one_the_image_records(in_container):
    assert in_container.version().startswith("4.28")


def test_a_changelog_is_planned_in_the_container_as_on_the_host(in_container, empty_database, project):
    changesets = plan(in_container, empty_database, project)
    assert [c.name for c in changesets][:3] == ["db/changelog.xml::1::alice", "db/changelog.xml::2::alice",
                                                "db/more.yaml::3::carol"]
    assert all(c.checksum and c.checksum.startswith("9:") for c in changesets)


def test_a_changelog_in_the_container_sees_nothing_of_the_host_outside_its_source(
        in_container, empty_database, outside_the_source):
    command = parse_liquibase_args(["update", "--changelog-file=changelog.xml"])
    with pytest.raises(CommandFailed) as failed:
        in_container.plan(command, empty_database, cwd=outside_the_source)
    assert "the appliance secret" not in failed.value.stdout + failed.value.stderr
    assert "secret.sql" in failed.value.stdout + failed.value.stderr


def test_the_password_goes_by_name_never_in_argv(in_container, runner, empty_database, project):
    calls = []

    class Recording:
        def __call__(self, argv, **kw):
            calls.append((list(argv), kw.get("env") or {}))
            return runner(argv, **kw)

    spy = ContainerLiquibase(Recording(), in_container.image, java_opts=in_container.java_opts)
    password = empty_database.password  # the server demands it (SCRAM): the plan succeeds only if it arrived
    assert password
    plan(spy, empty_database, project)
    argv, env = next((a, e) for a, e in calls if a[:2] == ["docker", "run"])
    assert password not in " ".join(argv) and "LIQUIBASE_COMMAND_PASSWORD" in argv
    assert env["LIQUIBASE_COMMAND_PASSWORD"] == password


def test_a_run_past_its_timeout_raises_our_own_error_and_leaves_no_container(in_container, runner, empty_database,
                                                                             tmp_path):
    project = public_tmpdir("sqlrs-lb-sleep-")
    (project / "changelog.sql").write_text("--liquibase formatted sql\n--changeset t:1\nselect pg_sleep(120);\n")
    (project / "changelog.sql").chmod(0o644)
    names = []

    def recording(argv, **kw):
        if list(argv[:2]) == ["docker", "run"]:
            names.append(argv[argv.index("--name") + 1])
        return runner(argv, **kw)

    spy = ContainerLiquibase(recording, in_container.image, java_opts=in_container.java_opts)
    try:
        with pytest.raises(CommandTimedOut) as error:
            spy.run(parse_liquibase_args(["update", "--changelog-file=changelog.sql"]), empty_database,
                    cwd=project, timeout=3)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    assert error.value.timeout == 3
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{names[0]}$"], capture_output=True, text=True)
    assert left.stdout.strip() == ""
