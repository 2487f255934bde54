"""What both Liquibase runners (on the host, in a container) plan against: an empty database on the
session's PostgreSQL, and a project beside a file only root may read."""
from __future__ import annotations

import shutil

import pytest

from appliance.liquibase_runners.base import Connection
from tests.support.tmpdirs import public_tmpdir


@pytest.fixture
def empty_database(control_postgres) -> Connection:
    url = control_postgres.new_database_url()  # postgresql://postgres:<password>@127.0.0.1:<port>/<name>
    return Connection(jdbc_url="jdbc:postgresql://" + url.split("@", 1)[1], username="postgres",
                      password=control_postgres.password)


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
