"""The API in tests: an app made without a running appliance (to list its routes), where the API
really served by hypercorn answers, and what a rejected request must answer."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.settings import Settings
from tests.support.ports import free_tcp_port


class NoContext:
    """Enough of a context for ``create_app`` to build its routes: default settings, nothing else."""
    settings = Settings()


@dataclass
class ServedApi:
    url: str
    token: str
    port: int
    data_dir: Path


async def assert_rejected(response, status: int, code: str, fragment: str = "") -> dict:
    body = await response.get_json()
    assert response.status_code == status, body
    assert body["code"] == code
    assert fragment.lower() in body["message"].lower(), body["message"]
    return body


# -- the API really served by hypercorn (`sqlrs-appliance api`), for what only a server shows ------
def service_command(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", *args], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def serve_api(data_dir, redis_url: str, extra_env: dict[str, str] | None = None):
    """`sqlrs-appliance api` on a loopback port (hypercorn, a migrated SQLite Control DB, the
    session's Redis, no workers), with an operator token; yields a ServedApi, stops it after."""
    port = free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    env.update({"SQLRS_DATA_DIR": str(data_dir), "SQLRS_STORAGE_BACKEND": "copy", "SQLRS_BTRFS_IMAGE": "off",
                "SQLRS_REDIS_URL": redis_url, "SQLRS_LOG_LEVEL": "WARNING",
                # fuzzing sends thousands of requests a minute: keep them from being rate limited
                "SQLRS_RATE_LIMIT_PER_PRINCIPAL": "100000", "SQLRS_RATE_LIMIT_PRINCIPAL_BURST": "100000",
                "SQLRS_RATE_LIMIT_PER_ORG": "100000", "SQLRS_RATE_LIMIT_ORG_BURST": "100000", **(extra_env or {})})
    service_command("migrate", "--data-dir", str(data_dir), env=env)
    token = service_command("token", "--data-dir", str(data_dir), "--name", "tests", env=env).strip()
    log_path = data_dir.parent / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "api", "--listen",
                                 f"127.0.0.1:{port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    tls = env.get("SQLRS_TLS_SELF_SIGNED") == "true"
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1, verify=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the API did not answer"
            time.sleep(0.2)
        yield ServedApi(url=url, token=token, port=port, data_dir=data_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
