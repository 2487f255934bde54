"""Flag validation: accepted spellings, rejected flags, variables."""
from __future__ import annotations

import pytest

from appliance.errors import InvalidArgument
from appliance.planning.psql.plan import plan_psql


@pytest.fixture
def root(source):
    source("a.sql", "select 1;\n")
    return source.root


def plan(root, *args, **kwargs):
    return plan_psql(list(args), root=root, **kwargs)


@pytest.mark.parametrize(
    "flag",
    ["-h", "--host", "-p", "--port", "-U", "--username", "-d", "--dbname", "-l", "--list",
     "-o", "--output", "-L", "--log-file", "-s", "--single-step", "-V", "--version", "-?", "--help",
     "-w", "--no-password", "-W", "--password"],
)
def test_each_rejected_flag_is_refused_with_its_name(root, flag):
    with pytest.raises(InvalidArgument) as error:
        plan(root, flag, "x", "-f", "a.sql")
    assert flag.lstrip("-") in error.value.message and "not accepted" in error.value.message


def test_a_rejected_flag_inside_a_short_cluster_is_refused(root):
    with pytest.raises(InvalidArgument, match="-h/--host"):
        plan(root, "-qh", "db.example", "-f", "a.sql")


def test_a_rejected_long_flag_with_an_inline_value_is_refused(root):
    with pytest.raises(InvalidArgument, match="--port"):
        plan(root, "--port=5433", "-f", "a.sql")


def test_a_positional_database_name_is_refused_by_position(root):
    with pytest.raises(InvalidArgument, match=r"positional psql argument \(argument 3\)"):
        plan(root, "-f", "a.sql", "mydb")


def test_a_refused_connection_string_is_not_echoed(root):
    with pytest.raises(InvalidArgument) as error:
        plan(root, "-f", "a.sql", "postgresql://u:s3cret@h/db")
    assert "s3cret" not in str(error.value.to_dict())


def test_an_argument_after_double_dash_is_refused(root):
    with pytest.raises(InvalidArgument, match=r"argument 4\)"):
        plan(root, "-f", "a.sql", "--", "user1")


def test_an_unknown_short_flag_is_refused(root):
    with pytest.raises(InvalidArgument, match="unknown psql flag -k"):
        plan(root, "-k", "-f", "a.sql")


def test_an_unknown_long_flag_is_refused_not_passed_through(root):
    with pytest.raises(InvalidArgument, match="unknown psql flag --sing"):
        plan(root, "--sing", "-f", "a.sql")


def test_a_flag_missing_its_value_is_refused(root):
    with pytest.raises(InvalidArgument, match="needs a value"):
        plan(root, "-f", "a.sql", "-c")


def test_a_no_value_long_flag_given_a_value_is_refused(root):
    with pytest.raises(InvalidArgument, match="takes no value"):
        plan(root, "--quiet=yes", "-f", "a.sql")


def test_nothing_to_run_is_refused(root):
    with pytest.raises(InvalidArgument, match="nothing to run"):
        plan(root, "-1", "-q")


def test_on_error_stop_other_than_1_is_refused(root):
    with pytest.raises(InvalidArgument, match="ON_ERROR_STOP"):
        plan(root, "-v", "ON_ERROR_STOP=0", "-f", "a.sql")


def test_on_error_stop_1_is_accepted_and_does_not_change_the_hash(root):
    with_it = plan(root, "--set=ON_ERROR_STOP=1", "-f", "a.sql")
    without = plan(root, "-f", "a.sql")
    assert with_it.steps[0].task_hash == without.steps[0].task_hash


def test_singlestep_variable_is_refused_like_the_single_step_flag(root):
    with pytest.raises(InvalidArgument, match="SINGLESTEP"):
        plan(root, "-v", "SINGLESTEP=on", "-f", "a.sql")


def test_a_variable_without_a_value_is_refused(root):
    with pytest.raises(InvalidArgument, match="NAME=VALUE"):
        plan(root, "-v", "x", "-f", "a.sql")


@pytest.mark.parametrize("name", ["a-b", "a b", "a:b", "a'b"])
def test_an_invalid_variable_name_is_refused(root, name):
    with pytest.raises(InvalidArgument, match="invalid psql variable name"):
        plan(root, "-v", f"{name}=1", "-f", "a.sql")


@pytest.mark.parametrize("name", ["a_B9", "_", "größe", "日本"])
def test_variable_names_are_ascii_letters_digits_underscores_or_anything_not_ascii(root, name):
    plan(root, "-v", f"{name}=1", "-f", "a.sql")


def test_every_spelling_of_a_flag_gives_the_same_plan(root):
    spellings = [
        ["-1", "-v", "x=1", "-f", "a.sql"],
        ["--single-transaction", "--set", "x=1", "--file", "a.sql"],
        ["-1vx=1", "-fa.sql"],
        ["-1", "--variable=x=1", "--file=a.sql"],
    ]
    plans = [plan(root, *args) for args in spellings]
    assert {p.steps[0].task_hash for p in plans} == {plans[0].steps[0].task_hash}
    assert {tuple(p.steps[0].argv) for p in plans} == {("-1", "-v", "x=1", "-f", "a.sql")}


def test_no_psqlrc_is_accepted_and_left_to_the_executor(root):
    result = plan(root, "-X", "-f", "a.sql")
    assert result.steps[0].argv == ["-f", "a.sql"]


def test_csv_is_accepted(root):
    assert plan(root, "--csv", "-f", "a.sql").steps[0].argv == ["--csv", "-f", "a.sql"]


def test_the_last_assignment_of_a_variable_wins(root):
    assert plan(root, "-v", "x=1", "-v", "x=2", "-f", "a.sql").variables == {"x": "2"}
