"""An org admin's and an operator's verbs against a real appliance: tokens, usage and quota,
projects, the audit log, shares, export and import."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path


def sqlrs(appliance, *args: str, cwd: Path, token: str | None = None) -> subprocess.CompletedProcess:
    auth = ["--token", token] if token else ["--token-file", str(appliance.data_dir / "admin.token")]
    argv = [sys.executable, "-m", "appliance.cli.main", "--url", appliance.url, *auth, *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=180)


def as_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def prepared_state(appliance, scripts) -> str:
    return as_json(sqlrs(appliance, "--output", "json", "prepare:psql", "--", "-f", "schema.sql",
                         cwd=scripts))["result"]["state_id"]


def test_a_created_token_s_secret_is_the_only_line_on_stdout_and_works_until_revoked(appliance, tmp_path):
    created = sqlrs(appliance, "token", "create", "ci-robot", "--role", "viewer", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert len(created.stdout.splitlines()) == 1 and secret
    assert as_json(sqlrs(appliance, "status", "--output", "json", cwd=tmp_path, token=secret))["org"] == "default"
    listed = as_json(sqlrs(appliance, "token", "ls", "--output", "json", cwd=tmp_path))
    (mine,) = [t for t in listed if t["name"] == "ci-robot" and t["revoked_at"] is None]
    assert secret not in json.dumps(listed)
    assert sqlrs(appliance, "token", "revoke", mine["token_id"], cwd=tmp_path).returncode == 0
    refused = sqlrs(appliance, "status", cwd=tmp_path, token=secret)
    assert refused.returncode == 2 and "unauthenticated" in refused.stderr


def test_usage_and_a_quota_change_and_back(appliance, tmp_path):
    assert "max_instances" in sqlrs(appliance, "usage", cwd=tmp_path).stdout
    changed = as_json(sqlrs(appliance, "quota", "default", "--set", "max_instances=37", "--output", "json",
                            cwd=tmp_path))
    assert changed["limits"]["max_instances"] == 37
    back = as_json(sqlrs(appliance, "quota", "default", "--set", "max_instances=default", "--output", "json",
                         cwd=tmp_path))
    assert back["limits"]["max_instances"] != 37
    wrong = sqlrs(appliance, "quota", "default", "--set", "max_everything=1", cwd=tmp_path)
    assert wrong.returncode == 2 and "max_instances" in wrong.stderr


def test_a_state_is_shared_listed_and_unshared(appliance, scripts):
    state_id = prepared_state(appliance, scripts)
    assert sqlrs(appliance, "share", "add", state_id, "partners", cwd=scripts).returncode == 0
    assert [s["org"] for s in as_json(sqlrs(appliance, "share", "ls", state_id, "--output", "json", cwd=scripts))] \
        == ["partners"]
    assert sqlrs(appliance, "share", "rm", state_id, "partners", cwd=scripts).returncode == 0
    assert as_json(sqlrs(appliance, "share", "ls", state_id, "--output", "json", cwd=scripts)) == []


def test_projects_are_added_and_listed_and_the_audit_log_shows_it(appliance, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    repo = appliance.data_dir.parent / "projects" / name
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert sqlrs(appliance, "project", "add", name, str(repo), cwd=tmp_path).returncode == 0
    assert name in [p["name"] for p in as_json(sqlrs(appliance, "project", "ls", "--output", "json", cwd=tmp_path))]
    events = as_json(sqlrs(appliance, "audit", "--action", "project.registered", "--limit", "1000", "--output", "json",
                           cwd=tmp_path))
    assert any(e["object_id"] == name for e in events)


def test_an_exported_state_is_imported_back_by_its_id(appliance, scripts):
    state_id = prepared_state(appliance, scripts)
    manifest = as_json(sqlrs(appliance, "export", state_id, "--output", "json", cwd=scripts))
    assert manifest["state_id"] == state_id and manifest["stream_bytes"] > 0
    imported = sqlrs(appliance, "import", state_id, cwd=scripts)
    assert imported.returncode == 0, imported.stderr
    assert state_id[:12] in imported.stdout and "nothing to do" in imported.stderr  # the appliance has it


def test_export_follows_its_transfer_with_progress_lines_or_returns_its_id_at_once(appliance, scripts):
    state_id = as_json(sqlrs(appliance, "--output", "json", "prepare:psql", "--", "-f", "schema.sql", "-c",
                             f"create table t_{uuid.uuid4().hex[:8]} as select 1 as x", cwd=scripts))["result"]["state_id"]
    queued = sqlrs(appliance, "export", state_id, "--no-wait", cwd=scripts)
    assert queued.returncode == 0, queued.stderr
    transfer_id = queued.stdout.strip()
    assert len(transfer_id) == 32
    followed = sqlrs(appliance, "export", state_id, cwd=scripts)  # the same export: followed to its end
    assert followed.returncode == 0, followed.stderr
    assert "done" in followed.stderr and state_id[:12] in followed.stdout
    shown = as_json(sqlrs(appliance, "transfer", transfer_id, "--output", "json", cwd=scripts))
    assert shown["status"] == "succeeded" and shown["manifest"]["compression"] == "zstd"


def test_an_import_of_a_state_never_exported_fails_with_its_code(appliance, scripts):
    refused = sqlrs(appliance, "import", "f" * 64, cwd=scripts)
    assert refused.returncode == 2 and "error: not_found:" in refused.stderr
