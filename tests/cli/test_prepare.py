"""How a finished prepare job is reported."""
from __future__ import annotations

import pytest

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.cli.prepare import job_failure, report_prepared


def test_a_failed_job_is_reported_with_its_error_code_and_exit_code_one():
    failure = job_failure({"job_id": "j", "status": "failed",
                           "error": {"code": "step_failed", "message": "psql: ERROR: boom"}})
    assert (failure.code, failure.message, failure.exit_code) == ("step_failed", "psql: ERROR: boom",
                                                                  exit_codes.JOB_FAILED)


def test_a_cancelled_job_without_an_error_body_is_reported_as_cancelled():
    failure = job_failure({"job_id": "j", "status": "cancelled", "error": None})
    assert (failure.code, failure.exit_code) == ("cancelled", exit_codes.JOB_FAILED)


def test_a_succeeded_job_prints_the_dsn_as_the_last_line_of_stdout(capsys):
    status = {"job_id": "j", "status": "succeeded", "plan_only": False, "error": None,
              "result": {"dsn": "postgres://u:p@h:1/db", "instance_id": "i" * 32, "state_id": "s" * 32}}
    assert report_prepared(status, "human") == exit_codes.OK
    assert capsys.readouterr().out.splitlines()[-1] == "DSN=postgres://u:p@h:1/db"


def test_a_succeeded_job_whose_instance_is_gone_is_a_failure():
    status = {"job_id": "j", "status": "succeeded", "plan_only": False, "error": None,
              "result": {"dsn": None, "instance_id": "i" * 32, "state_id": "s" * 32}}
    with pytest.raises(CliFailure, match="no DSN"):
        report_prepared(status, "human")
