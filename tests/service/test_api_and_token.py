"""`sqlrs-appliance api` (the API alone), `sqlrs-appliance reconciler` and `sqlrs-appliance token`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from appliance.api.auth.tokens import verify_api_token
from appliance.control.db import close_database, open_database
from appliance.control.migrations import migrate
from appliance.control.models import Host
from tests.support.polling import wait_until
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


def _split_env(tmp_path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    env.update({"SQLRS_DATA_DIR": str(tmp_path), "SQLRS_STORAGE_BACKEND": "copy", "SQLRS_REDIS_URL": redis_url,
                "SQLRS_HOST_ID": "split-host", "SQLRS_RECONCILE_INTERVAL_SECONDS": "0.5"})
    return env


def _hosts(tmp_path) -> list[tuple[str, object]]:
    db = open_database(f"sqlite:///{tmp_path / 'control.db'}")
    try:
        return list(Host.select(Host.host_id, Host.heartbeat_at).tuples())
    finally:
        close_database(db)


def test_the_reconciler_registers_its_host_keeps_its_heartbeat_and_stops_on_sigterm(tmp_path, redis_url):
    assert service("migrate", "--data-dir", str(tmp_path), data_dir=tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "reconciler"],
                            env=_split_env(tmp_path, redis_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = wait_until(lambda: _hosts(tmp_path), 30, "the host registered")
        wait_until(lambda: _hosts(tmp_path)[0][1] > first[0][1], 30, "a second heartbeat")
        assert first[0][0] == "split-host"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""


def test_the_api_alone_runs_no_reconciler(tmp_path, redis_url):
    """Nothing but the reconciler writes the host's heartbeat: an API alone leaves no host registered."""
    assert service("migrate", "--data-dir", str(tmp_path), data_dir=tmp_path).returncode == 0
    port = free_tcp_port()
    proc = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "api", "--listen", f"127.0.0.1:{port}"],
                            env=_split_env(tmp_path, redis_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v1/health"), 30, "the API")
        time.sleep(1.5)  # three reconcile intervals
        assert _hosts(tmp_path) == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_reconciler_refuses_an_unmigrated_control_db(tmp_path, redis_url):
    result = service("reconciler", data_dir=tmp_path, redis_url=redis_url)
    assert result.returncode == 1 and "run `sqlrs-appliance migrate` first" in result.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
