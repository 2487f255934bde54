"""run:psql: the instance decides where psql connects; its password stays out of argv."""
from __future__ import annotations

import pytest

from appliance.cli.failures import CliFailure
from appliance.cli.run import check_run_args, newest_active_instance, split_password


@pytest.mark.parametrize("args", [["-h", "db"], ["--host=db"], ["--port", "5432"], ["-xUpostgres"],
                                  ["-d", "other"], ["--dbname=other"]])
def test_connection_flags_are_rejected(args):
    with pytest.raises(CliFailure, match="not accepted"):
        check_run_args(args)


def test_a_positional_database_name_is_rejected():
    with pytest.raises(CliFailure, match="unexpected psql argument"):
        check_run_args(["-c", "select 1", "otherdb"])


def test_a_flag_lookalike_inside_a_value_is_not_a_flag():
    check_run_args(["-c", "-h", "-v", "x=-p", "--command", "-U", "-At", "-f", "-"])


def test_interactive_and_output_flags_are_allowed_locally():
    check_run_args(["-o", "out.txt", "-L", "log.txt", "-s", "-l", "--csv"])


def test_the_password_moves_from_the_dsn_to_a_separate_value():
    dsn, password = split_password("postgres://sqlrs:p%40ss@127.0.0.1:6500/postgres?sslmode=disable")
    assert (dsn, password) == ("postgres://sqlrs@127.0.0.1:6500/postgres?sslmode=disable", "p@ss")


def test_a_dsn_without_password_is_unchanged():
    assert split_password("postgres://sqlrs@host:1/db") == ("postgres://sqlrs@host:1/db", None)


def test_the_newest_active_instance_is_the_default():
    instances = [{"instance_id": "a", "status": "active", "created_at": "2024-01-01T00:00:00Z"},
                 {"instance_id": "b", "status": "active", "created_at": "2024-01-02T00:00:00Z"},
                 {"instance_id": "c", "status": "stopped", "created_at": "2024-01-03T00:00:00Z"}]
    assert newest_active_instance(instances)["instance_id"] == "b"


def test_no_active_instance_is_an_error():
    with pytest.raises(CliFailure, match="no active instance"):
        newest_active_instance([{"instance_id": "c", "status": "stopped", "created_at": "x"}])
