"""The pytest plugin as a team uses it: examples/pytest-project's own suite, run by pytest under
xdist with two workers against a real appliance. Every test gets its own clone, sees the seeded
state and none of the others' changes, and every clone is gone when the suite ends."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlrs_client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytest-project"


def run_example(appliance, record: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SQLRS_URL": appliance.url, "SQLRS_TOKEN": appliance.token,
           "EXAMPLE_RECORD_DIR": str(record)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=EXAMPLE,
                          env=env, capture_output=True, text=True, timeout=600)


def active_instances(appliance) -> set[str]:
    with Client(appliance.url, appliance.token) as client:
        return {i["instance_id"] for i in client.instances() if i["status"] in ("active", "deleting")}


def test_the_example_suite_passes_under_two_xdist_workers_each_test_on_its_own_clone(appliance, tmp_path):
    before = active_instances(appliance)
    result = run_example(appliance, tmp_path, "-n", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "21 passed" in result.stdout
    files = sorted(tmp_path.iterdir())
    instances = [line for f in files for line in f.read_text().split()]
    assert {f.name.split("-")[0] for f in files} == {"gw0", "gw1"}  # both workers ran tests
    assert len(instances) == 21 and len(set(instances)) == 21  # one clone per test, never shared
    assert active_instances(appliance) == before  # each deleted, the session's own too


def test_a_suite_without_a_declared_prepare_fails_saying_how_to_declare_one(appliance, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "test_x.py").write_text("def test_x(sqlrs_database):\n    pass\n")
    env = {**os.environ, "SQLRS_URL": appliance.url, "SQLRS_TOKEN": appliance.token}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "[tool.sqlrs]" in result.stdout and "docs/pytest.md" in result.stdout


def test_a_conftest_may_declare_the_prepare_in_python(appliance, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "schema.sql").write_text("create table t as select 42 as answer;\n")
    (tmp_path / "conftest.py").write_text(
        "import pytest\nfrom sqlrs_client.project import Project\n\n\n@pytest.fixture(scope='session')\n"
        "def sqlrs_project(pytestconfig):\n"
        "    return Project(root=pytestconfig.rootpath, kind='psql', args=('-f', 'schema.sql'))\n")
    (tmp_path / "test_answer.py").write_text(
        "import psycopg2\n\n\ndef test_answer(sqlrs_database):\n"
        "    with psycopg2.connect(sqlrs_database.dsn) as conn, conn.cursor() as cur:\n"
        "        cur.execute('select answer from t')\n        assert cur.fetchone() == (42,)\n")
    env = {**os.environ, "SQLRS_URL": appliance.url, "SQLRS_TOKEN": appliance.token}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
