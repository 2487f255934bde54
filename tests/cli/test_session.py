"""The composite command's split (prepare args, then the run stage) and the environment a run
gets."""
from __future__ import annotations

from appliance.cli.session import RunStage, split_run_stage
from sqlrs_client.database import database_env


def test_run_psql_after_the_prepare_args_starts_the_run_stage():
    assert split_run_stage(["-f", "a.sql", "run:psql", "--", "-c", "select 1"]) == (
        ("-f", "a.sql"), RunStage("run:psql", ("-c", "select 1")))


def test_run_with_a_command_is_a_stage_too():
    assert split_run_stage(["-f", "a.sql", "run", "--", "make", "test"]) == (
        ("-f", "a.sql"), RunStage("run", ("make", "test")))


def test_a_psql_option_value_spelled_like_a_verb_is_the_option_value():
    assert split_run_stage(["-c", "run", "-f", "run:psql"]) == (("-c", "run", "-f", "run:psql"), None)


def test_without_a_run_verb_every_arg_is_the_prepare_s():
    assert split_run_stage(["-f", "a.sql", "--set=x=run"]) == (("-f", "a.sql", "--set=x=run"), None)


def test_the_run_gets_database_url_and_the_libpq_variables():
    env = database_env("postgres://sqlrs:p%40ss@127.0.0.1:31001/postgres")
    assert env == {"DATABASE_URL": "postgres://sqlrs:p%40ss@127.0.0.1:31001/postgres", "PGHOST": "127.0.0.1",
                   "PGPORT": "31001", "PGDATABASE": "postgres", "PGUSER": "sqlrs", "PGPASSWORD": "p@ss"}
