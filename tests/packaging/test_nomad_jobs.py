"""The appliance's own Nomad service jobs (nomad/sqlrs-*.nomad.json): what Nomad's register API
accepts (the strict schema check of the Nomad double), commands the CLI has, health checks on
routes the app serves, and an autoscaler policy on metrics the API really exports."""
from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.app import create_app
from appliance.service.main import cli as service_cli
from appliance.settings import Settings
from tests.nomad_double.validation import InvalidJob, validate_register_body
from tests.support.api import NoContext

NOMAD_DIR = Path(__file__).resolve().parents[2] / "nomad"
JOBS = sorted(p.name for p in NOMAD_DIR.glob("sqlrs-*.nomad.json"))
BIN = "/opt/sqlrs/venv/bin/sqlrs-appliance"
RAW_EXEC_KEYS = {"command", "args"}  # raw_exec's task config in every release (command required)
SAMPLE_ENV = {"NOMAD_ADDR_http": "127.0.0.1:7433"}


def job(name: str) -> dict:
    return json.loads((NOMAD_DIR / name).read_text())["Job"]


def tasks(name: str):
    for group in job(name)["TaskGroups"]:
        for task in group["Tasks"]:
            yield group, task


def interpolate(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: env[m.group(1)], text)


def api_task() -> dict:
    return next(t for _, t in tasks("sqlrs-api.nomad.json") if t["Name"] == "api")


def checks() -> dict[str, dict]:
    return {c["Name"]: c for service in api_task()["Services"] for c in service["Checks"]}


def scaling_checks() -> dict[str, dict]:
    policy = job("sqlrs-workers.nomad.json")["TaskGroups"][0]["Scaling"]["Policy"]
    return {name: body[0] for entry in policy["check"] for name, body in entry.items()}


def test_the_nomad_directory_holds_an_api_job_a_reconciler_job_and_a_workers_job():
    assert JOBS == ["sqlrs-api.nomad.json", "sqlrs-reconciler.nomad.json", "sqlrs-workers.nomad.json"]


def test_exactly_one_reconciler_runs_on_every_store_node():
    reconciler = job("sqlrs-reconciler.nomad.json")
    assert reconciler["Type"] == "system"  # one allocation per eligible node, and one on each node that joins
    assert {"LTarget": "${meta.sqlrs_store}", "RTarget": "true", "Operand": "="} in reconciler["Constraints"]
    ((group, task),) = list(tasks("sqlrs-reconciler.nomad.json"))
    assert group["Count"] == 1 and task["Config"]["args"] == ["reconciler"]


@pytest.mark.parametrize("name", JOBS)
def test_job_passes_the_strict_register_schema(name):
    body = json.loads((NOMAD_DIR / name).read_text())
    assert validate_register_body(body)["ID"] == name.removesuffix(".nomad.json")


def test_the_strict_schema_rejects_a_misspelt_field():
    body = json.loads((NOMAD_DIR / "sqlrs-workers.nomad.json").read_text())
    body["Job"]["TaskGroups"][0]["Scaling"]["Enable"] = True
    with pytest.raises(InvalidJob, match="unknown field 'Enable'"):
        validate_register_body(body)


@pytest.mark.parametrize("name", JOBS)
def test_every_task_runs_the_console_script_on_the_host_with_raw_exec(name):
    script = next(e for e in entry_points(group="console_scripts") if e.name == "sqlrs-appliance")
    assert script.value == "appliance.service.main:main"
    for _, task in tasks(name):
        assert task["Driver"] == "raw_exec" and set(task["Config"]) <= RAW_EXEC_KEYS
        assert task["Config"]["command"] == BIN


@pytest.mark.parametrize("name", JOBS)
def test_every_task_runs_a_command_the_cli_has(name):
    for _, task in tasks(name):
        args = [interpolate(a, SAMPLE_ENV) for a in task["Config"]["args"]]
        assert args[0] in service_cli.commands
        result = CliRunner().invoke(service_cli, [*args, "--help"])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", JOBS)
def test_every_sqlrs_variable_a_task_sets_names_a_setting(name):
    for _, task in tasks(name):
        for key in task["Env"]:
            assert key == "SQLRS_CONFIG" or key.removeprefix("SQLRS_").lower() in Settings.model_fields, key


@pytest.mark.parametrize("name", JOBS)
def test_secrets_come_from_the_jobs_nomad_variable_not_from_the_job(name):
    for _, task in tasks(name):
        (template,) = task["Templates"]
        assert template["Envvars"] is True and f'nomadVar "nomad/jobs/{name.removesuffix(".nomad.json")}"' \
            in template["EmbeddedTmpl"]
        assert not any("://" in v and "${" not in v for v in task["Env"].values())


def test_migrations_run_before_the_api_in_its_allocation():
    (group,) = job("sqlrs-api.nomad.json")["TaskGroups"]
    prestart = [t for t in group["Tasks"] if (t.get("Lifecycle") or {}).get("Hook") == "prestart"]
    assert [(t["Config"]["args"], t["Lifecycle"]["Sidecar"]) for t in prestart] == [(["migrate"], False)]


def test_the_api_listens_on_the_port_its_service_registers():
    (group,) = job("sqlrs-api.nomad.json")["TaskGroups"]
    ports = {p["Label"] for network in group["Networks"] for p in network["DynamicPorts"]}
    args = api_task()["Config"]["args"]
    assert args[:2] == ["api", "--listen"] and args[2] == "${NOMAD_ADDR_%s}" % api_task()["Services"][0]["PortLabel"]
    assert api_task()["Services"][0]["PortLabel"] in ports


def test_health_checks_point_at_routes_the_app_serves():
    rules = {rule.rule for rule in create_app(NoContext).url_map.iter_rules()}
    assert {c["Path"] for c in checks().values()} == {"/v1/ready", "/v1/health"} <= rules


def test_only_a_failing_liveness_check_restarts_the_api():
    assert checks()["alive"]["Path"] == "/v1/health" and checks()["alive"]["CheckRestart"]["Limit"] > 0
    assert checks()["ready"]["Path"] == "/v1/ready" and "CheckRestart" not in checks()["ready"]


async def test_liveness_check_is_answered_without_a_token(client):
    alive = checks()["alive"]
    assert "Header" not in alive
    assert (await client.get(alive["Path"])).status_code == 200


async def test_readiness_check_is_answered_with_a_viewer_robot_token(client):
    created = await client.post("/v1/orgs/default/tokens", json={"name": "nomad-probe", "role": "viewer"},
                                headers=client.auth)
    ready = checks()["ready"]
    headers = {k: interpolate(v[0], {"SQLRS_PROBE_TOKEN": (await created.get_json())["token"]})
               for k, v in ready["Header"].items()}
    answer = await client.get(ready["Path"], headers=headers)
    assert answer.status_code == 200 and (await answer.get_json())["ok"] is True


@pytest.mark.parametrize("name", JOBS)
def test_updates_roll_one_allocation_at_a_time_and_revert_when_unhealthy(name):
    update = job(name)["Update"]
    assert (update["MaxParallel"], update["AutoRevert"]) == (1, True)
    assert 0 < update["MinHealthyTime"] < update["HealthyDeadline"] < update["ProgressDeadline"]


def test_an_api_allocation_is_healthy_only_when_its_checks_pass():
    assert job("sqlrs-api.nomad.json")["Update"]["HealthCheck"] == "checks"


def test_the_autoscaler_keeps_the_worker_count_between_min_and_max():
    (group,) = job("sqlrs-workers.nomad.json")["TaskGroups"]
    scaling = group["Scaling"]
    assert scaling["Enabled"] is True and 1 <= scaling["Min"] <= group["Count"] <= scaling["Max"]


def test_every_scaling_check_is_a_prometheus_query_with_a_target_value():
    for check in scaling_checks().values():
        assert check["source"] == "prometheus"
        (strategy,) = check["strategy"]
        assert list(strategy) == ["target-value"] and strategy["target-value"][0]["target"] > 0


def test_the_backlog_check_reads_the_queue_gauge_per_host():
    assert re.search(r"\bby \(host\) \(sqlrs_queue_jobs\)", scaling_checks()["backlog"]["query"])


async def test_scaling_queries_name_metrics_the_api_exports_while_a_job_waits(client):
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}
    assert (await client.post("/v1/prepare-jobs", json=body, headers=client.auth)).status_code == 201
    text = (await (await client.get("/metrics", headers=client.auth)).get_data()).decode()
    exported = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    for check in scaling_checks().values():
        for metric in re.findall(r"\bsqlrs_[a-z_]+\b", check["query"]):
            assert metric in exported, metric
            grouped = re.findall(r"by \(([a-z_, ]+)\) \(" + metric, check["query"])
            assert all(label.strip() in exported[metric].labels for g in grouped for label in g.split(","))
    assert exported["sqlrs_queue_jobs"].value == 1
