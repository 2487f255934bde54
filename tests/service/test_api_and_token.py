"""`sqlrs-appliance api` (API + reconciler, no workers) and `sqlrs-appliance token`."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from appliance.api.auth.tokens import verify_api_token
from appliance.control.db import close_database, open_database
from appliance.control.migrations import migrate
from tests.support.ports import free_tcp_port


def service(*args: str, data_dir, redis_url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    env.update({"SQLRS_DATA_DIR": str(data_dir), "SQLRS_STORAGE_BACKEND": "copy"})
    if redis_url:
        env["SQLRS_REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "appliance.service.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_api_refuses_to_start_without_a_shared_redis(tmp_path):
    result = service("api", data_dir=tmp_path)
    assert result.returncode == 1 and "needs SQLRS_REDIS_URL" in result.stderr


def test_api_refuses_an_unmigrated_control_db(tmp_path, redis_url):
    result = service("api", data_dir=tmp_path, redis_url=redis_url)
    assert result.returncode == 1 and "run `sqlrs-appliance migrate` first" in result.stderr


def test_api_serves_once_the_control_db_is_migrated(tmp_path, redis_url):
    assert service("migrate", "--data-dir", str(tmp_path), data_dir=tmp_path).returncode == 0
    port = free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    env.update({"SQLRS_DATA_DIR": str(tmp_path), "SQLRS_STORAGE_BACKEND": "copy", "SQLRS_REDIS_URL": redis_url})
    proc = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "api", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not answer"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_created_token_is_printed_once_and_authenticates(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'control.db'}")
    migrate(db)
    result = service("token", "--name", "ci-pipeline", "--data-dir", str(tmp_path), data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("sqlrs_")
    assert verify_api_token(token).org == "default"
    assert token.encode() not in (tmp_path / "control.db").read_bytes()
    close_database(db)
