"""Client-side packing: the bundle holds what psql reads and plans identically on the server."""
from __future__ import annotations

import os

import pytest

from appliance.errors import InvalidArgument
from appliance.planning.bundle import bundle_source_id, unpack_bundle
from appliance.planning.packing import pack_directory_bundle, pack_psql_bundle
from appliance.planning.psql.plan import plan_psql

LIMITS = {"max_bytes": 1_000_000, "max_files": 100}


@pytest.fixture
def project(source, src_root):
    source("app/main.sql", "\\i parts/one.sql\n\\ir ../shared/common.sql\nselect :x;\n")
    source("app/parts/one.sql", "select 1;\n")
    source("shared/common.sql", "select 2;\n")
    source("app/unused.sql", "select 3;\n")
    return src_root


def task_hashes(plan):
    return [s.task_hash for s in plan.steps]


def test_packing_then_unpacking_then_planning_gives_the_original_task_hashes(project, tmp_path):
    args = ["-v", "x=1", "-f", "main.sql", "-c", "select 4"]
    original = plan_psql(args, root=project, work_dir="app")
    packed = pack_psql_bundle(args, project / "app")
    unpacked = tmp_path / "unpacked"
    unpack_bundle(packed.data, unpacked, **LIMITS)
    assert task_hashes(plan_psql(packed.psql_args, root=unpacked, work_dir=packed.work_dir)) == task_hashes(original)


def test_the_bundle_holds_exactly_the_referenced_files(project):
    packed = pack_psql_bundle(["-f", "main.sql"], project / "app")
    assert packed.files == ["app/main.sql", "app/parts/one.sql", "shared/common.sql"]
    assert packed.work_dir == "app"


def test_relative_args_are_sent_unchanged(project):
    args = ["-1", "-fmain.sql"]
    assert pack_psql_bundle(args, project / "app").psql_args == args


def test_an_absolute_file_arg_is_made_relative_to_the_working_directory(project):
    packed = pack_psql_bundle(["-q", f"--file={project}/shared/common.sql"], project / "app")
    assert packed.psql_args == ["-q", "--file=../shared/common.sql"]
    assert packed.files == ["shared/common.sql"]


def test_packing_is_deterministic(project):
    first = pack_psql_bundle(["-f", "main.sql"], project / "app")
    os.utime(project / "app" / "main.sql", (0, 12345))
    assert pack_psql_bundle(["-f", "main.sql"], project / "app").data == first.data


def test_the_same_files_give_the_same_source_id(project, tmp_path):
    packed = pack_psql_bundle(["-f", "main.sql"], project / "app")
    assert unpack_bundle(packed.data, tmp_path / "a", **LIMITS) == unpack_bundle(packed.data, tmp_path / "b", **LIMITS)


@pytest.mark.parametrize("args, cwd", [(["-f", "main.sql"], "app"), (["-f", "../shared/common.sql"], "empty"),
                                       (["-c", "select 1", "-f", "parts/one.sql"], "app")],
                         ids=["includes", "empty-working-directory", "one-file"])
def test_the_client_names_a_psql_bundle_as_the_server_will(project, args, cwd):
    (project / "empty").mkdir()
    packed = pack_psql_bundle(args, project / cwd)
    assert packed.source_id == bundle_source_id(packed.data, **LIMITS)


def test_the_client_names_a_project_directory_as_the_server_will(project):
    packed = pack_directory_bundle(project)
    assert packed.source_id == bundle_source_id(packed.data, **LIMITS)


def test_another_file_content_is_another_source_id(project):
    before = pack_directory_bundle(project).source_id
    (project / "app" / "parts" / "one.sql").write_text("select 11;\n")
    assert pack_directory_bundle(project).source_id != before


def test_a_symlink_inside_the_project_is_packed_as_a_regular_file(project, tmp_path):
    os.symlink(project / "app" / "parts" / "one.sql", project / "app" / "linked.sql")
    packed = pack_psql_bundle(["-f", "linked.sql"], project / "app")
    unpacked = tmp_path / "unpacked"
    unpack_bundle(packed.data, unpacked, **LIMITS)
    linked = unpacked / packed.work_dir / "linked.sql"
    assert linked.read_text() == "select 1;\n" and not linked.is_symlink()


def test_includes_read_from_stdin_are_packed(project):
    packed = pack_psql_bundle(["-f", "-"], project / "app", stdin="\\i parts/one.sql\n")
    assert (packed.files, packed.work_dir) == (["parts/one.sql"], ".")


def test_a_missing_local_file_is_named(project):
    with pytest.raises(InvalidArgument) as error:
        pack_psql_bundle(["-f", "nope.sql"], project / "app")
    assert error.value.details == {"path": "nope.sql"}


def test_a_missing_absolute_file_is_named(project):
    with pytest.raises(InvalidArgument) as error:
        pack_psql_bundle(["-f", f"{project}/nope.sql"], project / "app")
    assert error.value.details == {"path": f"{project}/nope.sql"}


def test_rejected_flags_are_reported_before_packing(project):
    with pytest.raises(InvalidArgument, match="--host"):
        pack_psql_bundle(["-h", "db", "-f", "main.sql"], project / "app")


def test_a_working_directory_without_files_of_its_own_is_in_the_bundle(project, tmp_path):
    """`-f ../shared/common.sql` alone, from app/: psql must still find app/ to run in."""
    (project / "empty").mkdir()
    packed = pack_psql_bundle(["-f", "../shared/common.sql"], project / "empty")
    unpacked = tmp_path / "unpacked"
    unpack_bundle(packed.data, unpacked, **LIMITS)
    assert packed.work_dir == "empty" and (unpacked / "empty").is_dir()
    assert task_hashes(plan_psql(packed.psql_args, root=unpacked, work_dir=packed.work_dir)) == \
        task_hashes(plan_psql(["-f", "../shared/common.sql"], root=project, work_dir="empty"))


def test_a_symlink_out_of_the_project_is_refused_before_anything_is_uploaded(project):
    os.symlink("/etc/passwd", project / "app" / "passwd.sql")
    with pytest.raises(InvalidArgument, match="symlink out of the project") as refused:
        pack_psql_bundle(["-f", "main.sql", "-f", "passwd.sql"], project / "app")
    assert refused.value.details == {"path": "app/passwd.sql"}
