"""Which psql meta-commands a step may use: the ones that act in the database, or read the source."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import InvalidArgument
from appliance.planning.psql.plan import plan_psql


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "data.csv").write_text("1\n")
    return tmp_path


@pytest.mark.parametrize("command", [
    "\\copy items from 'data.csv' with (format csv)",
    "\\copy items from stdin",
    "\\copy (select 1) to stdout",
    "select 1 \\g (format=csv)",
    "\\o",
    "\\connect otherdb",
    "\\set x 1",
    "\\lo_import data.csv",
    "\\echo plain text",
])
def test_a_meta_command_that_stays_in_the_database_or_the_source_is_allowed(source, command):
    plan_psql(["-c", command], root=source)


@pytest.mark.parametrize("command,meta", [
    ("\\! id", "\\!"), ("\\o out.txt", "\\o"), ("\\copy items from program 'id'", "\\copy"),
    ("\\copy items to 'out.csv'", "\\copy"), ("\\copy items from '../data.csv'", "\\copy"),
    ("\\setenv X y", "\\setenv"), ("\\echo `id`", "\\echo"), ("\\c dbname=x host=elsewhere", "\\c"),
    # ways around a naive reading, found by a hostile review
    ("\\copy (select 1 from pg_class limit 1) to program 'id'", "\\copy"),
    ("\\copy (select 1 from pg_class) to '/tmp/x'", "\\copy"),
    ("\\COPY items FROM PROGRAM 'id'", "\\copy"),
    ("select 1 \\g '|id >&2 #)'", "\\g"),
    ("select 1 \\g (format=csv) out.csv", "\\g"),
    ("\\o |id>&2;#)", "\\o"),
    ("\\o /tmp/a)", "\\o"),
    ("\\o\f|id>&2", "\\o"),
    ("\\set f /etc/hostname\n\\lo_import :f", "\\lo_import"),
])
def test_a_meta_command_that_acts_on_the_worker_is_refused_naming_it(source, command, meta):
    with pytest.raises(InvalidArgument) as refused:
        plan_psql(["-c", command], root=source)
    assert refused.value.details["meta_command"] == meta


def test_a_refused_meta_command_inside_an_included_file_is_found_too(source):
    (source / "inner.sql").write_text("select 1;\n\\! id\n")
    (source / "outer.sql").write_text("\\i inner.sql\n")
    with pytest.raises(InvalidArgument) as refused:
        plan_psql(["-f", "outer.sql"], root=source)
    assert refused.value.details == {"meta_command": "\\!", "path": "inner.sql"}
