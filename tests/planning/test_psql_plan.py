"""Step split, content hashing, includes, variables and path confinement."""
from __future__ import annotations

import os

import pytest

from appliance.errors import InvalidArgument
from appliance.planning.psql.plan import plan_psql


def hashes(root, *args, **kwargs) -> list[str]:
    return [s.task_hash for s in plan_psql(list(args), root=root, **kwargs).steps]


# -- step split ------------------------------------------------------------------
def test_every_file_and_command_is_one_step_in_order(source, src_root):
    source("a.sql", "select 1;\n")
    source("b.sql", "select 2;\n")
    plan = plan_psql(["-f", "a.sql", "-c", "select 3", "-q", "-f", "b.sql"], root=src_root)
    assert [(s.index, s.kind, s.summary) for s in plan.steps] == [
        (0, "file", "-f a.sql"), (1, "command", '-c "select 3"'), (2, "file", "-f b.sql")]


def test_shared_flags_come_before_each_steps_own_input(source, src_root):
    source("a.sql", "select 1;\n")
    plan = plan_psql(["-f", "a.sql", "-1", "-c", "select 2"], root=src_root)
    assert [s.argv for s in plan.steps] == [["-1", "-f", "a.sql"], ["-1", "-c", "select 2"]]
    assert plan.normalized_args == ["-1", "-f", "a.sql", "-c", "select 2"]


def test_a_long_command_summary_is_truncated(src_root):
    step = plan_psql(["-c", "select " + "x, " * 100], root=src_root).steps[0]
    assert len(step.summary) <= 60 and step.summary.endswith('…"')


def test_stdin_is_a_step_that_carries_its_text(src_root):
    step = plan_psql(["-f", "-"], root=src_root, stdin="select 1;\n").steps[0]
    assert (step.argv, step.stdin) == (["-f", "-"], "select 1;\n")


def test_reading_stdin_without_stdin_is_refused(src_root):
    with pytest.raises(InvalidArgument, match="stdin"):
        plan_psql(["-f", "-"], root=src_root)


def test_a_command_and_a_file_with_the_same_text_hash_differently(source, src_root):
    source("a.sql", "select 1")
    assert len(set(hashes(src_root, "-f", "a.sql", "-c", "select 1"))) == 2


# -- content --------------------------------------------------------------------
def test_the_same_content_under_different_spellings_has_the_same_hash(source, src_root):
    source("a.sql", "select 1;\n")
    source("sub/x.sql", "")
    assert len(set(hashes(src_root, "-f", "a.sql", "-f", "./a.sql", "-f", "sub/../a.sql"))) == 1


def test_the_same_bytes_in_two_files_have_the_same_hash(source, src_root):
    source("a.sql", "select 1;\n")
    source("copy/of_a.sql", "select 1;\n")
    assert len(set(hashes(src_root, "-f", "a.sql", "-f", "copy/of_a.sql"))) == 1


def test_changing_an_included_file_changes_the_hash(source, src_root):
    source("main.sql", "\\i lib/inc.sql\n")
    source("lib/inc.sql", "select 1;\n")
    before = hashes(src_root, "-f", "main.sql")
    source("lib/inc.sql", "select 2;\n")
    assert hashes(src_root, "-f", "main.sql") != before


def test_include_spelling_does_not_change_the_hash(source, src_root):
    source("lib/inc.sql", "select 1;\n")
    source("one.sql", "\\i lib/inc.sql\n")
    source("two.sql", "\\include './lib/../lib/inc.sql'\n")
    source("lib/three.sql", "\\ir inc.sql\n")
    source("three.sql", "\\i lib/three.sql\n")
    one, two = hashes(src_root, "-f", "one.sql", "-f", "two.sql")
    assert one == two
    assert hashes(src_root, "-f", "lib/three.sql")[0] == one


def test_moving_text_across_an_include_boundary_changes_the_hash(source, src_root):
    source("a.sql", "\\i b.sql\nselect 2;\n")
    source("b.sql", "select 1;\n")
    before = hashes(src_root, "-f", "a.sql")
    source("a.sql", "\\i b.sql\n")
    source("b.sql", "select 1;\nselect 2;\n")
    assert hashes(src_root, "-f", "a.sql") != before


def test_include_relative_resolves_from_the_including_files_directory(source, src_root):
    source("db/main.sql", "\\ir parts/p.sql\n")
    source("db/parts/p.sql", "select 1;\n")
    assert plan_psql(["-f", "db/main.sql"], root=src_root).steps


def test_include_resolves_from_the_working_directory(source, src_root):
    source("db/main.sql", "\\i parts/p.sql\n")
    source("db/parts/p.sql", "select 1;\n")
    assert plan_psql(["-f", "main.sql"], root=src_root, work_dir="db").steps


def test_an_include_inside_a_command_is_expanded(source, src_root):
    source("p.sql", "select 1;\n")
    before = hashes(src_root, "-c", "\\i p.sql")
    source("p.sql", "select 2;\n")
    assert hashes(src_root, "-c", "\\i p.sql") != before


def test_an_include_inside_stdin_is_expanded(source, src_root):
    source("p.sql", "select 1;\n")
    before = hashes(src_root, "-f", "-", stdin="\\i p.sql\n")
    source("p.sql", "select 2;\n")
    assert hashes(src_root, "-f", "-", stdin="\\i p.sql\n") != before


def one_hash(source, src_root, text: str) -> str:
    source("s.sql", text)
    return hashes(src_root, "-f", "s.sql")[0]


def test_comments_and_blank_lines_that_psql_never_sends_do_not_change_the_hash(source, src_root):
    plain = one_hash(source, src_root, "create table t (i int);\ninsert into t values (1);\n")
    assert one_hash(source, src_root, "-- header\n\ncreate table t (i int);   -- why\n\n"
                                      "  insert into t values (1);\n-- end\n\n") == plain


def test_a_comment_or_whitespace_inside_a_statement_changes_the_hash(source, src_root):
    plain = one_hash(source, src_root, "insert into t values (1);\n")
    assert len({plain, one_hash(source, src_root, "insert into t -- why\n values (1);\n"),
                one_hash(source, src_root, "insert into t  values (1);\n"),
                one_hash(source, src_root, "/* why */ insert into t values (1);\n")}) == 4


def test_a_comment_between_the_statements_of_a_begin_atomic_body_changes_the_hash(source, src_root):
    body = "create function f() returns int language sql begin atomic select 1;{} select 2; end;\n"
    assert one_hash(source, src_root, body.format("")) != one_hash(source, src_root, body.format("\n-- why\n"))


def test_a_comment_after_a_semicolon_inside_parentheses_changes_the_hash(source, src_root):
    rule = "create rule r as on insert to t do also (insert into a values (1);{} insert into b values (2));\n"
    assert one_hash(source, src_root, rule.format("")) != one_hash(source, src_root, rule.format(" -- why"))


def test_copy_data_is_hashed_byte_for_byte(source, src_root):
    copy = "copy t from stdin;\n1\n{}\\.\nselect 1;\n"
    assert one_hash(source, src_root, copy.format("")) != one_hash(source, src_root, copy.format("\n"))


def test_a_command_is_hashed_whole(src_root):
    assert hashes(src_root, "-c", "select 1;") != hashes(src_root, "-c", "select 1; -- why")


def test_include_lines_inside_comments_and_strings_are_not_expanded(source, src_root):
    source("a.sql", "-- \\i missing1.sql\n/* \\i missing2.sql */\nselect '\\i missing3.sql', $$\n\\i missing4.sql\n$$;\n")
    assert plan_psql(["-f", "a.sql"], root=src_root).steps


def test_copy_data_is_not_scanned_for_includes(source, src_root):
    source("a.sql", "copy t from stdin;\nit's data\n\\i missing.sql\n\\.\nselect 1;\n")
    assert plan_psql(["-f", "a.sql"], root=src_root).steps


def test_an_include_after_another_meta_command_on_the_same_line_is_expanded(source, src_root):
    source("a.sql", "\\set x 1 \\i p.sql\n")
    with pytest.raises(InvalidArgument, match="p.sql"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_an_include_path_may_use_a_variable_set_with_v(source, src_root):
    source("a.sql", "\\i :dir/p.sql\n")
    source("one/p.sql", "select 1;\n")
    source("two/p.sql", "select 2;\n")
    assert hashes(src_root, "-v", "dir=one", "-f", "a.sql") != hashes(src_root, "-v", "dir=two", "-f", "a.sql")


def test_an_include_path_built_by_a_shell_command_is_refused(source, src_root):
    source("a.sql", "\\i `echo p.sql`\n")
    with pytest.raises(InvalidArgument, match="backquote"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_an_unterminated_string_is_refused_rather_than_hiding_includes(source, src_root):
    source("a.sql", "select 'oops;\n\\i p.sql\n")
    with pytest.raises(InvalidArgument, match="unterminated quoted string starting at line 1"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_an_include_cycle_is_refused_naming_the_cycle(source, src_root):
    source("a.sql", "\\i b.sql\n")
    source("b.sql", "\\ir a.sql\n")
    with pytest.raises(InvalidArgument) as error:
        plan_psql(["-f", "a.sql"], root=src_root)
    assert "a.sql -> b.sql -> a.sql" in error.value.message


def test_including_the_same_file_twice_is_not_a_cycle(source, src_root):
    source("a.sql", "\\i b.sql\n\\i b.sql\n")
    source("b.sql", "select 1;\n")
    assert plan_psql(["-f", "a.sql"], root=src_root).steps


def test_a_missing_file_is_refused_with_its_path(src_root):
    with pytest.raises(InvalidArgument) as error:
        plan_psql(["-f", "nope.sql"], root=src_root)
    assert error.value.details == {"path": "nope.sql"}


def test_a_missing_included_file_is_refused_with_its_path(source, src_root):
    source("a.sql", "\\i 'my file.sql'\n")
    with pytest.raises(InvalidArgument) as error:
        plan_psql(["-f", "a.sql"], root=src_root)
    assert error.value.details == {"path": "my file.sql"}


def test_a_quoted_include_path_with_spaces_is_found(source, src_root):
    source("a.sql", "\\i 'my file.sql'\n")
    source("my file.sql", "select 1;\n")
    assert plan_psql(["-f", "a.sql"], root=src_root).steps


# -- confinement ----------------------------------------------------------------
def test_a_file_outside_the_source_is_refused(source, src_root):
    (src_root.parent / "x.sql").write_text("select 1;\n")
    with pytest.raises(InvalidArgument, match="outside the source") as error:
        plan_psql(["-f", "../x.sql"], root=src_root)
    assert error.value.details == {"path": "../x.sql"}


def test_an_include_escaping_the_source_is_refused(source, src_root):
    source("a.sql", "\\i ../../etc/passwd\n")
    with pytest.raises(InvalidArgument, match="outside the source"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_an_absolute_path_is_refused(source, src_root):
    source("a.sql", "\\i /etc/passwd\n")
    with pytest.raises(InvalidArgument, match="absolute"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_a_symlink_pointing_outside_the_source_is_refused(source, src_root):
    (src_root.parent / "secret.sql").write_text("select 1;\n")
    os.symlink(src_root.parent / "secret.sql", src_root / "link.sql")
    with pytest.raises(InvalidArgument, match="outside the source"):
        plan_psql(["-f", "link.sql"], root=src_root)


def test_a_symlink_inside_the_source_is_followed(source, src_root):
    source("real.sql", "select 1;\n")
    os.symlink("real.sql", src_root / "link.sql")
    assert len(set(hashes(src_root, "-f", "link.sql", "-f", "real.sql"))) == 1


def test_dot_dot_after_a_symlinked_directory_is_refused(source, src_root):
    source("deep/dir/x.sql", "select 1;\n")
    source("x.sql", "select 2;\n")
    os.symlink("deep/dir", src_root / "d")
    with pytest.raises(InvalidArgument, match="symlink"):
        plan_psql(["-f", "d/../x.sql"], root=src_root)


def test_a_directory_is_not_a_script(source, src_root):
    source("dir/x.sql", "")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        plan_psql(["-f", "dir"], root=src_root)


# -- variables and flags ----------------------------------------------------------
@pytest.mark.parametrize("reference", [":x", ":'x'", ':"x"', ":{?x}"])
def test_a_user_variable_keys_only_the_steps_that_interpolate_it(src_root, reference):
    args = ["-c", "select 1", "-c", f"select {reference}"]
    one = hashes(src_root, "-v", "x=1", *args)
    two = hashes(src_root, "-v", "x=2", *args)
    assert one[0] == two[0] and one[1] != two[1]


def test_a_variable_used_in_an_included_file_keys_the_including_step(source, src_root):
    source("a.sql", "\\i b.sql\n")
    source("b.sql", "select :x;\n")
    assert hashes(src_root, "-v", "x=1", "-f", "a.sql") != hashes(src_root, "-v", "x=2", "-f", "a.sql")


def test_a_typecast_is_not_a_variable_reference(src_root):
    args = ["-c", "select 1::x"]
    assert hashes(src_root, "-v", "x=1", *args) == hashes(src_root, "-v", "x=2", *args)


def test_setting_an_unused_variable_does_not_change_the_hash(src_root):
    assert hashes(src_root, "-c", "select 1") == hashes(src_root, "-v", "unused=1", "-c", "select 1")


def test_a_special_variable_keys_every_step(src_root):
    args = ["-c", "select 1", "-c", "select 2"]
    on, off = hashes(src_root, "-v", "AUTOCOMMIT=on", *args), hashes(src_root, "-v", "AUTOCOMMIT=off", *args)
    assert on[0] != off[0] and on[1] != off[1]


def test_single_transaction_keys_every_step(src_root):
    args = ["-c", "select 1", "-c", "select 2"]
    with_it, without = hashes(src_root, "-1", *args), hashes(src_root, *args)
    assert with_it[0] != without[0] and with_it[1] != without[1]


def test_the_order_of_an_echo_flag_and_the_echo_variable_matters(src_root):
    assert hashes(src_root, "-a", "-v", "ECHO=none", "-c", "select 1") != hashes(
        src_root, "-v", "ECHO=none", "-a", "-c", "select 1")


def test_no_readline_does_not_change_the_hash(src_root):
    assert hashes(src_root, "-n", "-c", "select 1") == hashes(src_root, "-c", "select 1")


def test_output_format_flags_key_every_step(src_root):
    assert hashes(src_root, "-A", "-c", "select 1") != hashes(src_root, "-c", "select 1")


def test_an_include_after_an_escape_string_with_an_escaped_quote_is_found(source, src_root):
    source("a.sql", "select E'it\\'s';\n\\i p.sql\n")
    with pytest.raises(InvalidArgument, match="p.sql"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_an_include_after_a_tagged_dollar_quote_is_found(source, src_root):
    source("a.sql", "do $body$ begin perform '$$'; end $body$;\n\\i p.sql\n")
    with pytest.raises(InvalidArgument, match="p.sql"):
        plan_psql(["-f", "a.sql"], root=src_root)


def test_backslash_copy_data_is_not_scanned_for_includes(source, src_root):
    source("a.sql", "\\copy t from stdin\nit's data\n\\i missing.sql\n\\.\nselect 1;\n")
    assert plan_psql(["-f", "a.sql"], root=src_root).steps
