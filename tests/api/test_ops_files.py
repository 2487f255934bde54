"""ops/: the alert rules pass `promtool check rules` and their own unit tests (`promtool test
rules`), and every series the rules and the Grafana dashboard read is one a real scrape of the
API serves, so renaming a metric without them fails here. The scrape itself passes `promtool
check metrics` (Prometheus's naming and help lint)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from appliance.orchestrator import hosts
from tests.support.states import make_state
from tests.support.transfers import transferred

OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "sqlrs-rules.yml"
RULE_TESTS = OPS / "prometheus" / "sqlrs-rules.test.yml"
DASHBOARD = OPS / "grafana" / "sqlrs-appliance.json"
SERIES = re.compile(r"\bsqlrs_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: scripts/install-deps --tests installs the `prometheus` package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def sample_names(family) -> set[str]:
    """The names a family's samples take, whether or not it has any yet (a counter of error codes
    before the first error)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
    return {family.name + suffix for suffix in suffixes} | {sample.name for sample in family.samples}


@pytest.fixture
async def served_series(ctx, client) -> tuple[str, set[str]]:
    """One scrape after a little of everything: a registered host, an export, requests, a 401."""
    hosts.register(ctx)
    make_state(ctx)
    assert (await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth)))[
        "status"] == "succeeded"
    await client.get("/v1/states", headers={"Authorization": "Bearer sqlrs_wrong"})
    text = (await (await client.get("/metrics", headers=client.auth)).get_data()).decode()
    return text, {name for family in text_string_to_metric_families(text) for name in sample_names(family)}


def test_the_rules_pass_promtool_check():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_pass_their_unit_tests():
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_fails_a_rule_that_alerts_once_per_api_process(tmp_path):
    """The unit tests bite: without ``max without (instance)``, two API processes page twice."""
    (tmp_path / "sqlrs-rules.yml").write_text(RULES.read_text().replace(
        "expr: max without (instance) (sqlrs_queue_oldest_age_seconds)", "expr: sqlrs_queue_oldest_age_seconds"))
    (tmp_path / "sqlrs-rules.test.yml").write_text(RULE_TESTS.read_text())
    done = promtool("test", "rules", str(tmp_path / "sqlrs-rules.test.yml"))
    assert done.returncode != 0 and "SqlrsQueueBacklog" in done.stdout + done.stderr


def test_every_alert_has_a_unit_test():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
              if "alert" in rule}
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert alerts and alerts == tested


async def test_every_series_the_rules_read_is_served(served_series):
    _, served = served_series
    read = {name for expr in rule_expressions() for name in SERIES.findall(expr)}
    assert read and {name for name in read if name not in served} == set()


async def test_every_series_the_dashboard_reads_is_served(served_series):
    _, served = served_series
    read = {name for expr in dashboard_expressions() for name in SERIES.findall(expr)}
    assert read and {name for name in read if name not in served} == set()


async def test_the_scrape_passes_promtool_check_metrics(served_series):
    text, _ = served_series
    tool = shutil.which("promtool")
    assert tool
    done = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_panels_have_unique_ids_and_a_place_on_the_grid():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all({"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
               for p in panels)


def test_the_dashboard_asks_for_its_data_source_instead_of_naming_one():
    text = DASHBOARD.read_text()
    assert '"uid": "${datasource}"' in text
    assert {v["name"] for v in json.loads(text)["templating"]["list"]} == {"datasource", "host"}
