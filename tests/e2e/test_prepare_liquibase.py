"""prepare:lb end to end: a real changelog of eleven changesets in four formats (XML, YAML,
formatted SQL, JSON), the real Liquibase CLI, one state per changeset."""
from __future__ import annotations

import json
import sqlite3

from tests.support.liquibase import UPDATE, prepare
from tests.support.prepares import executes
from tests.support.psql import psql


def built(status: dict) -> list[str]:
    return [t["summary"] for t in executes(status) if not t["cached"]]


def test_the_first_prepare_builds_one_state_per_changeset_and_hands_out_the_database(appliance, project):
    status = prepare(appliance, project, "--contexts", "prod")
    assert status["status"] == "succeeded", status.get("error")
    assert len(built(status)) == len(executes(status)) == 11  # ten changesets and the marker
    assert executes(status)[0]["summary"] == "changelog.xml::1::shop"
    assert [t["task_id"] for t in executes(status)] == [f"execute-{n}" for n in range(11)]  # as for psql
    dsn = status["result"]["dsn"]
    assert psql(dsn, "select total from order_totals where customer_id = 2").stdout.strip() == "99.00"
    assert psql(dsn, "select count(*) from databasechangelog").stdout.strip() == "11"
    states = {s["state_id"]: s for s in appliance.get("/v1/states").json()}
    assert all(t["output_state_id"] in states for t in executes(status))


def test_adding_a_changeset_at_the_end_builds_only_that_one(appliance, project):
    prepare(appliance, project, "--contexts", "prod")
    master = project / "changelog.xml"
    master.write_text(master.read_text().replace("</databaseChangeLog>", """  <changeSet id="12" author="shop">
    <createIndex tableName="customers" indexName="customers_email"><column name="email"/></createIndex>
  </changeSet>
</databaseChangeLog>"""))
    status = prepare(appliance, project, "--contexts", "prod")
    assert built(status) == ["changelog.xml::12::shop"]


def test_editing_changeset_5_reuses_1_to_4_and_rebuilds_from_5(appliance, project):
    first = prepare(appliance, project, "--contexts", "prod")
    (project / "schema.yaml").write_text((project / "schema.yaml").read_text().replace(
        "indexName: orders_customer", "indexName: orders_by_customer"))
    second = prepare(appliance, project, "--contexts", "prod")
    assert [t["cached"] for t in executes(second)][:4] == [True] * 4
    assert built(second)[0] == "schema.yaml::5::shop" and len(built(second)) == 7
    assert [t["output_state_id"] for t in executes(first)][:4] == [t["output_state_id"] for t in executes(second)][:4]


def test_another_context_reuses_the_changesets_both_run_and_builds_only_its_own(appliance, project):
    prod = prepare(appliance, project, "--contexts", "prod")
    test = prepare(appliance, project, "--contexts", "test")
    assert built(test) == ["changelog.xml::11::shop"]
    assert [t["output_state_id"] for t in executes(test)][:11] == [t["output_state_id"] for t in executes(prod)]
    assert psql(test["result"]["dsn"], "select name from customers where id = 99").stdout.strip() == "Test Customer"


def test_a_failing_changeset_fails_the_job_with_liquibases_message_and_caches_nothing_past_it(appliance, project):
    (project / "data.sql").write_text((project / "data.sql").read_text().replace(
        "--changeset shop:8\n", "--changeset shop:8\nselect * from no_such_table;\n"))
    status = prepare(appliance, project, "--contexts", "prod")
    assert status["status"] == "failed"
    assert status["error"]["code"] == "step_failed"
    assert 'relation "no_such_table" does not exist' in status["error"]["message"]
    by_task = {t["summary"]: t for t in executes(status)}
    states = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert by_task["data.sql::7::shop"]["output_state_id"] in states
    assert by_task["data.sql::8::shop"]["output_state_id"] not in states


def test_arguments_that_name_a_connection_are_refused_before_anything_is_recorded(appliance, project):
    response = appliance.submit_lb([*UPDATE, "--url=jdbc:postgresql://elsewhere/db"], project)
    assert response.status_code == 400 and response.json()["code"] == "invalid_argument"
    assert "the appliance supplies the connection" in response.json()["message"]


def test_a_repeated_request_is_planned_at_admission_without_running_liquibase(appliance, project):
    first = prepare(appliance, project, "--contexts", "prod")
    second = prepare(appliance, project, "--contexts", "prod")
    assert "plan-liquibase" not in {t["task_id"] for t in second["tasks"]}
    assert "from the plan cache" in next(t for t in second["tasks"] if t["task_id"] == "plan")["summary"]
    assert not any("update-sql" in (e.get("message") or "") for e in appliance.events(second["job_id"]))
    assert [t["cached"] for t in executes(second)] == [True] * 11
    assert [t["output_state_id"] for t in executes(second)] == [t["output_state_id"] for t in executes(first)]
    assert psql(second["result"]["dsn"], "select count(*) from databasechangelog").stdout.strip() == "11"


def test_cache_explain_answers_for_a_liquibase_request_once_a_job_has_planned_it(appliance, project):
    request = appliance.lb_request([*UPDATE, "--contexts", "prod"], project)
    before = appliance.post("/v1/cache/explain/prepare", json=request).json()
    assert (before["decision"], before["reason_code"], before["steps"]) == ("unknown", "liquibase_not_planned", [])
    prepare(appliance, project, "--contexts", "prod")
    after = appliance.post("/v1/cache/explain/prepare", json=request).json()
    assert (after["decision"], after["reason_code"]) == ("hit", "exact_state_match")
    assert [s["summary"] for s in after["steps"]][:2] == ["changelog.xml::1::shop", "changelog.xml::2::shop"]
    assert len(after["steps"]) == 11 and all(s["cached"] for s in after["steps"])


def test_a_cached_plan_that_disagrees_with_liquibase_fails_the_step_instead_of_recording_a_wrong_state(
        appliance, project):
    prepare(appliance, project, "--contexts", "prod")
    with sqlite3.connect(appliance.data_dir / "control.db") as db:  # a plan gone wrong: 3 and 4 swapped
        plan_id, changesets_json = db.execute(  # this test's: the newest
            "select id, changesets_json from liquibase_plan order by id desc limit 1").fetchone()
        changesets = json.loads(changesets_json)
        changesets[2]["changeset"], changesets[3]["changeset"] = changesets[3]["changeset"], changesets[2]["changeset"]
        db.execute("update liquibase_plan set changesets_json = ? where id = ?", (json.dumps(changesets), plan_id))
    status = prepare(appliance, project, "--contexts", "prod")
    assert status["status"] == "failed" and status["error"]["code"] == "step_failed"
    assert "liquibase applied changelog.xml::3::shop" in status["error"]["message"]
    states = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert executes(status)[2]["output_state_id"] not in states
