"""A repository's sqlrs.toml (or [tool.sqlrs] in pyproject.toml): found from below, checked key by
key, and written back as it was read."""
from __future__ import annotations

import pytest

from sqlrs_client.errors import InvalidInput
from sqlrs_client.project import Project, find, load


def test_the_nearest_sqlrs_toml_above_the_working_directory_is_the_project(tmp_path):
    (tmp_path / "sqlrs.toml").write_text('prepare = "psql"\nargs = ["-f", "schema.sql"]\ndir = "db"\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    project = find(tmp_path / "src" / "deep")
    assert project is not None and project.root == tmp_path and project.work_dir == tmp_path / "db"
    assert project.args == ("-f", "schema.sql") and project.image == "postgres:15" and project.url is None


def test_a_tool_sqlrs_table_in_pyproject_is_a_project_too(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.sqlrs]\nprepare = "lb"\n'
                                             'args = ["update", "--changelog-file=changelog.xml"]\n')
    assert find(tmp_path).kind == "lb"


def test_a_pyproject_without_the_table_is_passed_by(tmp_path):
    (tmp_path / "sqlrs.toml").write_text('prepare = "psql"\nargs = ["-c", "select 1"]\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find(tmp_path / "pkg").root == tmp_path


def test_an_unknown_key_is_named(tmp_path):
    (tmp_path / "sqlrs.toml").write_text('prepare = "psql"\nargs = ["-c", "select 1"]\nimgae = "postgres:16"\n')
    with pytest.raises(InvalidInput, match="imgae"):
        load(tmp_path / "sqlrs.toml")


@pytest.mark.parametrize("text,named", [('prepare = "mysql"\nargs = ["x"]\n', "prepare"),
                                        ('prepare = "psql"\nargs = "-f a.sql"\n', "args"),
                                        ('prepare = "psql"\nargs = ["-c", "x"]\ndir = "../elsewhere"\n', "leaves")])
def test_a_wrong_value_is_refused_naming_the_key(tmp_path, text, named):
    (tmp_path / "sqlrs.toml").write_text(text)
    with pytest.raises(InvalidInput, match=named):
        load(tmp_path / "sqlrs.toml")


def test_what_is_written_reads_back_the_same(tmp_path):
    project = Project(root=tmp_path, kind="psql", args=("-f", 'odd "name".sql', "-c", "select '\\x'"), dir="db",
                      image="postgres:16", url="http://appliance:7433")
    (tmp_path / "sqlrs.toml").write_text(project.to_toml())
    assert load(tmp_path / "sqlrs.toml") == project


def test_the_project_request_packs_from_its_directory(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "schema.sql").write_text("create table t (id int);\n")
    request = Project(root=tmp_path, kind="psql", args=("-f", "schema.sql"), dir="db").request(ttl_seconds=60)
    assert request.bundle.files == ["schema.sql"] and request.body["instance"] == {"ttl_seconds": 60}
