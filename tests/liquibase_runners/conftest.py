"""The Liquibase runners as the appliance opens them (``open_liquibase``), each against a real
PostgreSQL: ``liquibase_runner`` is every driver in turn, so every test that takes it is the
conformance suite's, run on the host and in a container alike."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from appliance.isolation.level import choose_isolation
from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import Connection, LiquibaseRunner
from appliance.settings import Settings
from appliance.shell import Runner, unprivileged
from tests.support.docker import ensure_liquibase_image, require_docker
from tests.support.liquibase import MIXED, Driver, public_copy
from tests.support.tmpdirs import public_tmpdir


@pytest.fixture(scope="session")
def sandbox(runner: Runner) -> Sandbox:
    """The one the appliance would choose on this host."""
    return choose_isolation(Settings(), runner, unprivileged(Settings().liquibase_os_user)).sandbox


@pytest.fixture(scope="session")
def host_driver(sandbox: Sandbox) -> Driver:
    """The distribution at liquibase_home, as liquibase_os_user, in the sandbox this host gives
    (bubblewrap when the tests run as root, as in CI)."""
    settings = Settings(liquibase_runner="host", data_dir=public_tmpdir("sqlrs-lb-data-"))  # its class archives
    if not (settings.liquibase_home / "liquibase").is_file() or shutil.which("java") is None:
        message = (f"LIQUIBASE TESTS NOT RUN: no Liquibase at {settings.liquibase_home} or no java; "
                   "run scripts/install-deps")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Driver(settings, sandbox)


@pytest.fixture(scope="session")
def container_driver(sandbox: Sandbox) -> Driver:
    """liquibase_image, built offline by scripts/build-liquibase-image, on this host's Docker engine."""
    require_docker()
    settings = Settings(liquibase_runner="docker")
    ensure_liquibase_image(settings.liquibase_image)
    return Driver(settings, sandbox)


@pytest.fixture(scope="session", params=["host", "container"])
def liquibase_driver(request) -> Driver:
    return request.getfixturevalue(f"{request.param}_driver")


@pytest.fixture(scope="session")
def liquibase_runner(liquibase_driver: Driver, runner: Runner) -> LiquibaseRunner:
    return liquibase_driver.open(runner)


@pytest.fixture
def empty_database(control_postgres) -> Connection:
    url = control_postgres.new_database_url()  # postgresql://postgres:<password>@127.0.0.1:<port>/<name>
    return Connection(jdbc_url="jdbc:postgresql://" + url.split("@", 1)[1], username="postgres",
                      password=control_postgres.password)


@pytest.fixture
def project():
    """The mixed changelog, as the appliance keeps sources: readable by anyone."""
    base = public_copy(MIXED, public_tmpdir("sqlrs-lb-project-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def outside_the_source():
    """A project in a directory anyone may read, beside a file only root may read."""
    base = public_tmpdir("sqlrs-lb-escape-")
    (base / "secret").mkdir(mode=0o700)
    (base / "secret" / "secret.sql").write_text("select 'the appliance secret';\n")
    (base / "secret" / "secret.sql").chmod(0o600)
    (base / "project").mkdir(mode=0o755)
    (base / "project" / "changelog.xml").write_text("""<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
    http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
  <changeSet id="1" author="t"><sqlFile path="../secret/secret.sql" relativeToChangelogFile="true"/></changeSet>
</databaseChangeLog>
""")
    (base / "project" / "changelog.xml").chmod(0o644)
    yield base / "project"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sleeping_project():
    """A changelog whose one changeset sleeps for two minutes."""
    base = public_tmpdir("sqlrs-lb-sleep-")
    (base / "changelog.sql").write_text("--liquibase formatted sql\n--changeset t:1\nselect pg_sleep(120);\n")
    (base / "changelog.sql").chmod(0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def missing(tmp_path: Path) -> Path:
    return tmp_path / "no-liquibase-here"
