"""State identity, differentially: two requests get the same state id if and only if fresh
builds of both give identical databases (schema dump, data, and ``databasechangelog`` without
``dateexecuted``, ``orderexecuted`` and ``deployment_id``).

Every request is built once, in an org of its own (state ids do not depend on the org, and an
org never sees another's states), so each build is fresh: no request is answered from the
other's states. Each pair also says which way it should go, so the corpus keeps cases of both.
"""
from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.prepares import executes

EXAMPLES = Path(__file__).parent / "changelogs" / "liquibase-examples"


@dataclass(frozen=True)
class Request:
    kind: str  # psql | lb
    files: tuple[tuple[str, str], ...]
    args: tuple[str, ...]

    def edited(self, *, files: dict[str, str | None] | None = None, args: tuple[str, ...] | None = None) -> Request:
        """This request with files replaced (None removes one) or other arguments."""
        merged = {**dict(self.files), **(files or {})}
        return Request(self.kind, tuple(sorted((k, v) for k, v in merged.items() if v is not None)),
                       self.args if args is None else args)


def request(kind: str, files: dict[str, str], *args: str) -> Request:
    return Request(kind, tuple(sorted(files.items())), args)


# -- psql --------------------------------------------------------------------------------------
SCHEMA = "\\ir inc/types.sql\ncreate table items (id int primary key, size size_t);\n"
TYPES = "create domain size_t as int check (value >= 0);\n"
DATA = "insert into items select g, g * :n from generate_series(1, 5) g;\n"
AUDITED = ("create table audit (query text);\n"
           "create function audit() returns trigger language plpgsql as $$\n"
           "begin insert into audit values (current_query()); return null; end $$;\n"
           "create trigger audited after insert on items execute function audit();\n")
PSQL = request("psql", {"schema.sql": SCHEMA, "inc/types.sql": TYPES, "data.sql": DATA},
               "-v", "n=3", "-f", "schema.sql", "-f", "data.sql")
PSQL_AUDITED = PSQL.edited(files={"schema.sql": SCHEMA + AUDITED})

# -- Liquibase -----------------------------------------------------------------------------------
MASTER = """<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
    http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
  <changeSet id="1" author="ann">
    <comment>the table</comment>
    <createTable tableName="person"><column name="id" type="int"/><column name="name" type="text"/></createTable>
  </changeSet>
  <include file="{more}" relativeToChangelogFile="true"/>
</databaseChangeLog>
"""
MORE = "--liquibase formatted sql\n--changeset bob:2\ninsert into person values (1, 'Ada');\n"
LB = request("lb", {"changelog.xml": MASTER.format(more="more.sql"), "more.sql": MORE},
             "update", "--changelog-file", "changelog.xml")


def lb_args(*extra: str, changelog: str = "changelog.xml") -> tuple[str, ...]:
    return ("update", "--changelog-file", changelog, *extra)


def example(name: str) -> Request:
    return request("lb", {name: (EXAMPLES / name).read_text()}, *lb_args(changelog=name))


PAIRS = {  # name: (a, b, the same database and state expected)
    "psql: a renamed script": (PSQL, PSQL.edited(files={"schema.sql": None, "tables.sql": SCHEMA}, args=(
        "-v", "n=3", "-f", "tables.sql", "-f", "data.sql")), True),
    "psql: an included file moved into a subdirectory": (PSQL, PSQL.edited(
        files={"inc/types.sql": None, "inc/sub/types.sql": TYPES,
               "schema.sql": SCHEMA.replace("inc/types.sql", "inc/sub/types.sql")}), True),
    "psql: an included file changed": (PSQL, PSQL.edited(files={"inc/types.sql": TYPES.replace(">= 0", "> 0")}),
                                       False),
    "psql: a -v variable the script uses changed": (PSQL, PSQL.edited(args=(
        "-v", "n=4", "-f", "schema.sql", "-f", "data.sql")), False),
    "psql: a -v variable no script uses added": (PSQL, PSQL.edited(args=(
        "-v", "n=3", "-v", "unused=1", "-f", "schema.sql", "-f", "data.sql")), True),
    "psql: a comment and blank lines between statements": (PSQL, PSQL.edited(files={
        "data.sql": "-- five items\n\n" + DATA + "\n-- done\n"}), True),
    "psql: a comment inside a statement that an audit trigger records": (PSQL_AUDITED, PSQL_AUDITED.edited(files={
        "data.sql": DATA.replace(" from ", " -- five\n  from ")}), False),
    "liquibase: the example changelog, XML and its YAML twin": (
        example("example-changelog.xml"), example("example-changelog.yaml"), False),
    "liquibase: a renamed changelog": (LB, LB.edited(files={"changelog.xml": None,
                                                           "main.xml": MASTER.format(more="more.sql")},
                                                    args=lb_args(changelog="main.xml")), False),
    "liquibase: another changeset id": (LB, LB.edited(files={"more.sql": MORE.replace("bob:2", "bob:2b")}), False),
    "liquibase: another author": (LB, LB.edited(files={"more.sql": MORE.replace("bob:2", "eve:2")}), False),
    "liquibase: an included changelog moved into a subdirectory": (LB, LB.edited(files={
        "more.sql": None, "sub/more.sql": MORE, "changelog.xml": MASTER.format(more="sub/more.sql")}), False),
    "liquibase: an included changelog changed": (LB, LB.edited(files={
        "more.sql": MORE.replace("'Ada'", "'Grace'")}), False),
    "liquibase: another comment Liquibase records": (LB, LB.edited(files={
        "changelog.xml": MASTER.format(more="more.sql").replace("the table", "people")}), False),
    "liquibase: an XML comment and blank lines in a changeset": (LB, LB.edited(files={
        "changelog.xml": MASTER.format(more="more.sql").replace("<comment>", "<!-- why -->\n\n    <comment>")}),
        True),
    "liquibase: a context filter on a changelog without contexts": (LB, LB.edited(args=lb_args("--contexts", "dev")),
                                                                    True),
    "liquibase: another search path": (LB, LB.edited(files={"extra/README": "nothing here\n"},
                                                     args=lb_args("--search-path", ".,extra")), True),
}


@dataclass(frozen=True)
class Build:
    state_id: str
    schema: str
    data: str
    changelog: str


@pytest.fixture(scope="module")
def builds(appliance, tmp_path_factory):
    """Request -> its one fresh build, made on first use."""
    made: dict[Request, Build] = {}

    def build(req: Request) -> Build:
        if req not in made:
            made[req] = fresh_build(appliance, req, tmp_path_factory.mktemp("request"))
        return made[req]
    return build


def fresh_build(appliance, req: Request, root: Path) -> Build:
    for name, text in req.files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    with appliance.acting_in(f"identity-{uuid.uuid4().hex[:8]}"):
        if req.kind == "psql":
            status = appliance.prepare(list(req.args), root)
        else:
            response = appliance.submit_lb(list(req.args), root)
            assert response.status_code == 201, response.text
            status = appliance.wait(response.json()["job_id"], timeout=300)
        assert status["status"] == "succeeded", status.get("error")
        assert not any(t["cached"] for t in executes(status))  # fresh: built here, from nothing cached
        built = Build(executes(status)[-1]["output_state_id"], *dump(status["result"]["dsn"]))
        # Only to spare memory: the identity under test does not depend on it (its instance expires anyway).
        appliance.delete(f"/v1/instances/{status['result']['instance_id']}", params={"force": "true"})
    return built


def dump(dsn: str) -> tuple[str, str, str]:
    """Schema, data (without Liquibase's tables) and databasechangelog without what differs per run."""
    def run(*argv: str) -> str:
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout
    schema = without_restrict_keys(run("pg_dump", "--schema-only", dsn))
    data = without_restrict_keys(run("pg_dump", "--data-only", "--exclude-table=databasechangelog*", dsn))
    changelog = run("psql", "-X", "-At", dsn, "-c",
                    "select coalesce(json_agg(to_jsonb(d) - 'dateexecuted' - 'orderexecuted' - 'deployment_id'"
                    " order by orderexecuted), '[]') from databasechangelog d"
                    if "databasechangelog" in schema else "select '[]'")
    return schema, data, changelog


def without_restrict_keys(dump: str) -> str:
    """pg_dump guards its script with ``\\restrict <key>``/``\\unrestrict <key>``, a key new on every run."""
    return "\n".join(line for line in dump.splitlines() if not line.startswith(("\\restrict ", "\\unrestrict ")))


@pytest.mark.parametrize("pair", list(PAIRS))
def test_two_requests_share_a_state_exactly_when_fresh_builds_give_identical_databases(builds, pair):
    a, b, same = PAIRS[pair]
    first, second = builds(a), builds(b)
    identical = (first.schema, first.data, first.changelog) == (second.schema, second.data, second.changelog)
    assert identical == same, f"{pair}: the databases are {'identical' if identical else 'different'}"
    assert (first.state_id == second.state_id) == identical, f"{pair}: state ids {first.state_id} {second.state_id}"


def test_liquibases_xml_and_yaml_examples_differ_only_in_the_file_name_liquibase_records(builds):
    xml, yaml = builds(example("example-changelog.xml")), builds(example("example-changelog.yaml"))
    assert (xml.schema, xml.data) == (yaml.schema, yaml.data)
    assert xml.changelog.replace("example-changelog.xml", "example-changelog.yaml") == yaml.changelog
    assert xml.state_id != yaml.state_id
