"""The host driver's own ways (liquibase_runner = host): the distribution at liquibase_home, run
as an unprivileged OS user, in a bubblewrap sandbox when the host isolates tenants."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.errors import CommandFailed, CommandTimedOut
from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import Connection
from appliance.liquibase_runners.host import MAIN_CLASS, LiquibaseCli
from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.shell import Completed, unprivileged
from tests.support.liquibase import Driver, liquibase_processes
from tests.support.polling import wait_until
from tests.support.recording import RecordingRunner
from tests.support.tmpdirs import public_tmpdir

UPDATE = parse_liquibase_args(["update", "--changelog-file=changelog.xml"])


def test_without_a_sandbox_its_unprivileged_os_user_alone_keeps_a_changelog_from_a_file_only_root_may_read(
        host_driver, runner, empty_database, outside_the_source):
    if os.geteuid() != 0:
        message = "RUNS ONLY AS ROOT: Liquibase drops to an unprivileged user only when the appliance is root"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs as root: this must never be skipped there
        pytest.skip(message)
    settings = host_driver.settings
    confined = LiquibaseCli(runner, settings.liquibase_home, java_opts=settings.liquibase_java_opts,
                            run_as=unprivileged(settings.liquibase_os_user))
    with pytest.raises(CommandFailed) as failed:
        confined.plan(UPDATE, empty_database, cwd=outside_the_source)
    assert "the appliance secret" not in failed.value.stdout + failed.value.stderr
    assert "secret.sql" in failed.value.stdout + failed.value.stderr  # it says which file it could not read
    as_root = LiquibaseCli(runner, settings.liquibase_home, java_opts=settings.liquibase_java_opts)
    assert "the appliance secret" in as_root.plan(UPDATE, empty_database, cwd=outside_the_source)[0].sql  # it is there


def test_in_its_sandbox_liquibase_sees_the_source_the_distribution_and_the_jre_read_only_and_has_tcp(tmp_path):
    shell = RecordingRunner({("bwrap",): lambda argv: Completed(argv, 0, "", "")})
    home, jre, source = tmp_path / "liquibase", tmp_path / "jre", tmp_path / "source"
    for path in (home, jre, source / "db"):
        path.mkdir(parents=True)
    LiquibaseCli(shell, home, java_home=jre, sandbox=Sandbox(True)).run(
        UPDATE, Connection("jdbc:postgresql://127.0.0.1:5432/db", "postgres"), cwd=source / "db", source=source)
    (argv,) = shell.calls
    bound = {tuple(argv[i:i + 3]) for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")}
    assert {("--ro-bind", str(path.resolve()), str(path.resolve())) for path in (source, home, jre)} <= bound
    assert not [b for b in bound if b[0] == "--bind"] and "--unshare-net" not in argv
    assert argv[argv.index("--") + 1] == str(home / "liquibase")


def test_the_version_is_read_from_the_distribution_without_starting_a_jvm(host_driver):
    shell = RecordingRunner()  # rejects any command
    assert LiquibaseCli(shell, host_driver.settings.liquibase_home).version().startswith("4.28")
    assert shell.calls == []


def test_without_a_sandbox_a_run_past_its_timeout_is_stopped_at_once_with_its_jvm(
        host_driver, runner, empty_database, sleeping_project):
    """The launcher is a shell script that starts the JVM as its child: both go."""
    unsandboxed = Driver(host_driver.settings, Sandbox(False)).open(runner)
    started = time.monotonic()
    with pytest.raises(CommandTimedOut):
        unsandboxed.run(parse_liquibase_args(["update", "--changelog-file=changelog.sql"]), empty_database,
                        cwd=sleeping_project, timeout=3)
    assert time.monotonic() - started < 30  # not when the two-minute changeset would have ended
    wait_until(lambda: not liquibase_processes(empty_database), 10, "the killed run's JVM to be gone")


def test_liquibase_starts_on_its_command_line_class_without_other_databases_drivers(host_driver):
    cli = LiquibaseCli(RecordingRunner(), host_driver.settings.liquibase_home,
                       java_opts=host_driver.settings.liquibase_java_opts)
    command = cli.command()
    assert command[-1] == MAIN_CLASS and Path(command[0]).name == "java"
    jars = {Path(jar).name for jar in command[command.index("-cp") + 1].split(":")}
    assert {"liquibase-core.jar", "postgresql.jar", "snakeyaml.jar", "picocli.jar"} <= jars
    assert not {jar for jar in jars if jar.startswith(("snowflake", "liquibase-commercial", "ojdbc", "h2"))}


def test_a_run_in_its_sandbox_starts_that_jvm(host_driver, tmp_path):
    shell = RecordingRunner({("bwrap",): lambda argv: Completed(argv, 0, "", "")})
    cli = LiquibaseCli(shell, host_driver.settings.liquibase_home, sandbox=Sandbox(True))
    cli.run(UPDATE, Connection("jdbc:postgresql://127.0.0.1:5432/db", "postgres"), cwd=tmp_path, source=tmp_path)
    (argv,) = shell.calls
    assert argv[argv.index("--") + 1:][:len(cli.command())] == cli.command()



def test_its_jvm_maps_a_class_archive_the_appliance_made_that_only_root_may_change(host_driver, runner):
    settings = host_driver.settings.model_copy(update={"data_dir": public_tmpdir("sqlrs-lb-archive-")})
    umask = os.umask(0o077)  # the service's: every org's sandbox must still read the archive
    try:
        command = Driver(settings, host_driver.sandbox).open(runner).command()
    finally:
        os.umask(umask)
    (archive,) = [Path(arg.split("=", 1)[1]) for arg in command if arg.startswith("-XX:SharedArchiveFile=")]
    assert archive.parent == settings.data_dir / "liquibase"
    info = archive.stat()
    assert (info.st_uid, info.st_mode & 0o777, archive.parent.stat().st_mode & 0o777) == (os.geteuid(), 0o644, 0o755)


def test_without_a_place_for_class_archives_its_jvm_starts_without_one(host_driver):
    command = LiquibaseCli(RecordingRunner(), host_driver.settings.liquibase_home).command()
    assert not [arg for arg in command if "SharedArchiveFile" in arg]
