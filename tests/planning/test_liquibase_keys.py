"""What a Liquibase changeset's state key holds: what the changeset leaves in the database
(its checksum, the databasechangelog row Liquibase writes, its preconditions), and not what
only chose it (the context and label filters)."""
from __future__ import annotations

import dataclasses
import json

from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.planning.liquibase.changelogs import read_entry
from appliance.planning.liquibase.plans import PlannedChangeset, changeset_key
from appliance.planning.liquibase.update_sql import Changeset

ROW = {"ID": "1", "AUTHOR": "me", "FILENAME": "example-changelog.xml", "MD5SUM": "9:884e", "DESCRIPTION": "sql",
       "COMMENTS": "", "EXECTYPE": "EXECUTED", "CONTEXTS": None, "LABELS": None, "LIQUIBASE": "4.28.0"}
UPDATE = ["update", "--changelog-file=example-changelog.xml"]


def changeset(**row) -> PlannedChangeset:
    recorded = {**ROW, **row}
    return PlannedChangeset(Changeset(recorded["FILENAME"], recorded["ID"], recorded["AUTHOR"], "9:884e",
                                      "create table t (i int);", json.dumps(recorded, sort_keys=True)), False)


def key(planned: PlannedChangeset, *args: str) -> str:
    return changeset_key(planned, command=parse_liquibase_args([*UPDATE, *args]), version="4.28.0", job_id="j1")


def test_the_same_checksum_under_another_file_name_is_another_state():
    assert key(changeset()) != key(changeset(FILENAME="example-changelog.yaml"))


def test_another_id_or_author_is_another_state():
    assert len({key(changeset()), key(changeset(ID="2")), key(changeset(AUTHOR="you"))}) == 3


def test_a_comment_or_a_context_liquibase_records_is_another_state():
    assert len({key(changeset()), key(changeset(COMMENTS="why")), key(changeset(CONTEXTS="test"))}) == 3


def test_the_context_filter_that_chose_a_changeset_is_not_in_its_key():
    assert key(changeset(), "--contexts=prod") == key(changeset(), "--contexts=test") == key(changeset())


def test_a_changelog_parameter_is_in_every_key():
    assert key(changeset(), "-Dschema=a") != key(changeset(), "-Dschema=b")


def test_other_preconditions_are_another_state():
    planned = changeset()
    assert key(planned) != key(dataclasses.replace(planned, preconditions='["",{"tableExists":"t"}]'))


XML = """<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog">
  <changeSet id="1" author="me">
    <preConditions onFail="MARK_RAN"><tableExists tableName="{table}"/></preConditions>{comment}
    <sql>create table u (i int)</sql>
  </changeSet>
</databaseChangeLog>
"""


def preconditions(tmp_path, text: str, name: str = "c.xml") -> str:
    (tmp_path / name).write_text(text)
    return read_entry([tmp_path], Changeset(name, "1", "me", None, "")).preconditions


def test_an_xml_changesets_preconditions_are_read_and_its_layout_and_comments_are_not(tmp_path):
    plain = preconditions(tmp_path, XML.format(table="t", comment=""))
    assert "tableExists" in plain and '"t"' in plain
    assert preconditions(tmp_path, XML.format(table="t", comment="\n      <!-- why -->\n")) == plain
    assert preconditions(tmp_path, XML.format(table="other", comment="")) != plain


def test_yaml_and_formatted_sql_preconditions_are_read(tmp_path):
    yaml_text = ("databaseChangeLog:\n- changeSet:\n    id: 1\n    author: me\n    preConditions:\n"
                 "    - onFail: MARK_RAN\n    - tableExists:\n        tableName: {table}\n    changes: []\n")
    assert preconditions(tmp_path, yaml_text.format(table="t"), "c.yaml") != \
        preconditions(tmp_path, yaml_text.format(table="v"), "c.yaml")
    sql_text = ("--liquibase formatted sql\n--changeset me:1\n--preconditions onFail:MARK_RAN\n"
                "--precondition-sql-check expectedResult:0 select count(*) from {table}\ncreate table u (i int);\n")
    assert "select count(*) from t" in preconditions(tmp_path, sql_text.format(table="t"), "c.sql")
