"""The cross-tenant escape suite: two orgs on one real appliance, per runtime and store.

Org A keeps a secret in a state and in a running instance; org B, a member like any other, runs
attacker-chosen code every way a prepare lets it (server-side programs and file functions, psql
meta-commands, Liquibase) and the tests check the secret reaches nothing B can read, A's states
stay byte-identical and B writes nothing outside its own volumes.

Run with ``SQLRS_TENANT_ISOLATION=none`` in the environment to see the suite fail: that is the
proof it tests the isolation and not something else.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Appliance
from tests.support.appliance import appliance_on
from tests.support.psql import psql
from tests.support.tenants import Tenants


def _store_root(app: Appliance, driver: str, env: dict) -> Path:
    if driver.endswith("zfs"):
        out = subprocess.run(["zfs", "get", "-H", "-o", "value", "mountpoint", env["SQLRS_ZFS_DATASET"]],
                             capture_output=True, text=True, check=True).stdout.strip()
        return Path(out)
    return app.data_dir / "store"


@pytest.fixture(scope="module", params=["btrfs", "zfs", "docker", "nomad", "docker-zfs", "nomad-zfs"])
def tenants(request, tmp_path_factory) -> Iterator[Tenants]:
    env = {}
    if os.environ.get("SQLRS_TENANT_ISOLATION"):  # the proof run: the suite must fail with "none"
        env["SQLRS_TENANT_ISOLATION"] = os.environ["SQLRS_TENANT_ISOLATION"]
    if request.param.startswith(("docker", "nomad")):
        env["SQLRS_LIQUIBASE_RUNNER"] = "docker"
    for app in appliance_on(request, request.param, env):
        store = _store_root(app, request.param, app.env)
        org_a, org_b = f"alpha-{uuid.uuid4().hex[:6]}", f"bravo-{uuid.uuid4().hex[:6]}"
        secret = f"SECRET{uuid.uuid4().hex}"
        scripts = tmp_path_factory.mktemp("org-a")
        (scripts / "secret.sql").write_text(
            f"create table secret (v text);\ninsert into secret values ('{secret}');\n")
        with app.acting_in(org_a):
            built = app.prepare(["-f", "secret.sql"], scripts)
            assert built["status"] == "succeeded", built["error"]
        assert psql(built["result"]["dsn"], "select v from secret").stdout.strip() == secret
        yield Tenants(app, store, org_a, org_b, secret, built["result"]["dsn"], f"pwned{uuid.uuid4().hex[:8]}")
