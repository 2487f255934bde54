"""Prepare requests as the client builds them: the body the API reads, and the bundle of exactly
the files the arguments read."""
from __future__ import annotations

import pytest

from sqlrs_client.errors import InvalidInput
from sqlrs_client.prepare import liquibase_request, psql_request, reads_stdin


def test_a_command_only_request_reads_no_file_and_leaves_unset_fields_out(tmp_path):
    request = psql_request(["-c", "select 1"], cwd=tmp_path)
    assert request.bundle is None
    assert request.body == {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"],
                            "plan_only": False}


def test_ttl_and_name_go_into_the_instance_options(tmp_path):
    request = psql_request(["-c", "select 1"], cwd=tmp_path, ttl_seconds=60, name="review")
    assert request.body["instance"] == {"ttl_seconds": 60, "name": "review"}


def test_a_plan_asks_for_no_instance(tmp_path):
    request = psql_request(["-c", "select 1"], cwd=tmp_path, plan_only=True, ttl_seconds=60, name="review")
    assert "instance" not in request.body and request.body["plan_only"] is True


def test_the_files_psql_reads_are_packed_and_named_by_their_content(tmp_path):
    (tmp_path / "schema.sql").write_text("create table t (id int);\n\\ir more.sql\n")
    (tmp_path / "more.sql").write_text("insert into t values (1);\n")
    (tmp_path / "unrelated.sql").write_text("drop table t;\n")
    first = psql_request(["-f", "schema.sql"], cwd=tmp_path)
    assert first.bundle is not None and sorted(first.bundle.files) == ["more.sql", "schema.sql"]
    assert first.body["source"] == {"source_id": first.bundle.source_id, "work_dir": first.bundle.work_dir}
    (tmp_path / "more.sql").write_text("insert into t values (2);\n")
    assert psql_request(["-f", "schema.sql"], cwd=tmp_path).bundle.source_id != first.bundle.source_id


def test_dash_f_dash_reads_standard_input():
    assert reads_stdin(["-f", "-"]) and not reads_stdin(["-f", "a.sql", "-c", "select 1"])


def test_a_missing_file_is_invalid_input_naming_it(tmp_path):
    with pytest.raises(InvalidInput, match="missing.sql") as error:
        psql_request(["-f", "missing.sql"], cwd=tmp_path)
    assert error.value.code == "invalid_argument"


def test_a_liquibase_request_packs_the_whole_project(tmp_path):
    (tmp_path / "changelog.xml").write_text("<databaseChangeLog/>\n")
    request = liquibase_request(["update", "--changelog-file=changelog.xml"], tmp_path, priority=5)
    assert request.body["prepare_kind"] == "lb" and request.body["priority"] == 5
    assert request.body["liquibase_args"] == ["update", "--changelog-file=changelog.xml"]
    assert request.body["source"]["source_id"] == request.bundle.source_id


def test_a_liquibase_project_must_be_a_directory(tmp_path):
    with pytest.raises(InvalidInput, match="not a directory"):
        liquibase_request(["update"], tmp_path / "nowhere")
