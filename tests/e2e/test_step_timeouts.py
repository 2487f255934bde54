"""A step that runs past ``step_timeout_seconds`` is stopped and fails its job as the user's step
(``step_failed``, ``details.reason: step_timeout``), never as an internal error: for psql, for one
Liquibase changeset, and for a run of changesets in one Liquibase."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.appliance import appliance_on

TIMEOUT = 20  # long enough for a contended machine to start Liquibase's JVM for its plan


@pytest.fixture(scope="module")
def appliance(request):
    yield from appliance_on(request, "btrfs", {"SQLRS_STEP_TIMEOUT_SECONDS": str(TIMEOUT)})


def changelog(project: Path, *sql: str) -> None:
    changesets = "\n".join(f"--changeset t:{n}\n{text}\n" for n, text in enumerate(sql, start=1))
    (project / "changelog.sql").write_text(f"--liquibase formatted sql\n-- {project.name}\n{changesets}")


def failed_error(appliance, response) -> dict:
    assert response.status_code == 201, response.text
    status = appliance.wait(response.json()["job_id"], timeout=300)
    assert status["status"] == "failed", status
    return status["error"]


def expect_step_timeout(error: dict) -> None:
    """``timeout_seconds``: the step's limit; a run of changesets in one Liquibase gets one per changeset."""
    assert error["code"] == "step_failed", error
    assert error["details"]["reason"] == "step_timeout" and error["details"]["timeout_seconds"] % TIMEOUT == 0


def test_a_psql_step_past_the_step_timeout_fails_as_a_step_timeout(appliance, tmp_path):
    (tmp_path / "slow.sql").write_text(f"select /* {tmp_path.name} */ pg_sleep(600);\n")
    expect_step_timeout(failed_error(appliance, appliance.submit(["-f", "slow.sql"], tmp_path)))


def test_a_liquibase_changeset_past_the_step_timeout_fails_as_a_step_timeout(appliance, tmp_path):
    changelog(tmp_path, "select pg_sleep(600);")
    response = appliance.submit_lb(["update", "--changelog-file", "changelog.sql"], tmp_path)
    expect_step_timeout(failed_error(appliance, response))


def test_a_run_of_liquibase_changesets_past_its_timeout_fails_as_a_step_timeout(appliance, tmp_path):
    changelog(tmp_path, "create table a (i int);", "select pg_sleep(600);", "create table c (i int);")
    response = appliance.submit_lb(["update", "--changelog-file", "changelog.sql"], tmp_path)
    expect_step_timeout(failed_error(appliance, response))
