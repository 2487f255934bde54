"""prepare:lb on the container runtimes: the build cluster runs in a container (or a Nomad job)
and listens on the host's loopback; Liquibase, in its own container on the host network
(liquibase_runner = docker), connects to it there."""
from __future__ import annotations

import pytest

from appliance.settings import Settings
from tests.support.appliance import appliance_on
from tests.support.docker import ensure_liquibase_image
from tests.support.liquibase import prepare
from tests.support.prepares import executes
from tests.support.psql import psql


@pytest.fixture(scope="module", params=["docker", "nomad"])
def appliance(request):
    image = Settings.model_fields["liquibase_image"].default
    ensure_liquibase_image(image)
    yield from appliance_on(request, request.param, {"SQLRS_LIQUIBASE_RUNNER": "docker"})


def test_a_changelog_builds_one_state_per_changeset_and_a_repeat_is_a_hit_planned_at_admission(appliance, project):
    first = prepare(appliance, project, "--contexts", "prod")
    assert first["status"] == "succeeded", first.get("error")
    assert [t["cached"] for t in executes(first)] == [False] * 11
    messages = [e.get("message") or "" for e in appliance.events(first["job_id"])]
    assert any("in a container of sqlrs/liquibase:4.28: update-sql" in m for m in messages)
    assert psql(first["result"]["dsn"], "select total from order_totals where customer_id = 2").stdout.strip() == "99.00"
    second = prepare(appliance, project, "--contexts", "prod")
    assert "plan-liquibase" not in {t["task_id"] for t in second["tasks"]}
    assert [t["cached"] for t in executes(second)] == [True] * 11
    assert psql(second["result"]["dsn"], "select count(*) from databasechangelog").stdout.strip() == "11"
