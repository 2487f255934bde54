"""The API in-process (Quart test client, fixture `client` in tests/conftest.py) on a real
Control DB (SQLite and PostgreSQL), real Redis, a real store on disk and the host's Postgres
binaries. No worker runs here: these tests are about admission, validation and the contract,
not execution (see tests/e2e)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from appliance.api.app import create_app
from tests.support.api import ServedApi
from tests.support.oidc import AUDIENCE, LocalIssuer
from tests.support.ports import free_tcp_port


@pytest.fixture(scope="session")
def issuer():
    """A local OIDC issuer on loopback with keys generated for this run."""
    server = LocalIssuer()
    yield server
    server.stop()


@pytest.fixture
def oidc_client(ctx, token, issuer):
    """The API with OIDC on (against the local issuer), plus the operator token."""
    ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE})
    client = create_app(ctx).test_client()
    client.auth = {"Authorization": f"Bearer {token}"}
    return client


# -- the API really served by hypercorn (`sqlrs-appliance api`), for what only a server shows ------


def _service(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", *args], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def served_api(tmp_path_factory, redis_url):
    """`sqlrs-appliance api` on a loopback port (hypercorn, a migrated SQLite Control DB, the
    session's Redis, no workers), with an operator token."""
    data_dir = tmp_path_factory.mktemp("served-api") / "data"
    port = free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    env.update({"SQLRS_DATA_DIR": str(data_dir), "SQLRS_STORAGE_BACKEND": "copy", "SQLRS_BTRFS_IMAGE": "off",
                "SQLRS_REDIS_URL": redis_url, "SQLRS_LOG_LEVEL": "WARNING",
                # fuzzing sends thousands of requests a minute: keep them from being rate limited
                "SQLRS_RATE_LIMIT_PER_PRINCIPAL": "100000", "SQLRS_RATE_LIMIT_PRINCIPAL_BURST": "100000",
                "SQLRS_RATE_LIMIT_PER_ORG": "100000", "SQLRS_RATE_LIMIT_ORG_BURST": "100000"})
    _service("migrate", "--data-dir", str(data_dir), env=env)
    token = _service("token", "--data-dir", str(data_dir), "--name", "tests", env=env).strip()
    log_path = data_dir.parent / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "api", "--listen",
                                 f"127.0.0.1:{port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the API did not answer"
            time.sleep(0.2)
        yield ServedApi(url=url, token=token, port=port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
