"""States move between hosts through S3: export a chain from appliance A (its own zfs pool),
import it into appliance B (another pool), and B serves the same states with the same data."""
from __future__ import annotations

import contextlib
import subprocess
import uuid

import pytest

from appliance.artifacts.store import open_object_store
from appliance.settings import Settings

from .conftest import appliance_on, psql
from .test_prepare_psql import THREE_STEPS, executes


def s3_env(s3_server, bucket: str) -> dict[str, str]:
    from tests.support.s3 import ACCESS_KEY, SECRET_KEY
    return {"SQLRS_ARTIFACTS_URL": f"s3://{bucket}/appliance", "SQLRS_S3_ENDPOINT": s3_server.endpoint,
            "SQLRS_S3_ACCESS_KEY": ACCESS_KEY, "SQLRS_S3_SECRET_KEY": SECRET_KEY, "SQLRS_S3_SECURE": "false",
            "SQLRS_S3_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def hosts(request, s3_server):
    env = s3_env(s3_server, f"transfer-{uuid.uuid4().hex[:12]}")
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env))
        b = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env))
        yield a, b, env


def test_a_chain_exported_from_one_host_is_served_by_another_with_the_same_ids_and_data(hosts, scripts):
    a, b, _ = hosts
    built = a.prepare(THREE_STEPS, scripts)
    chain = [t["output_state_id"] for t in executes(built)]
    manifests = [a.post(f"/v1/states/{state_id}/export").json() for state_id in chain]
    assert [m["state_id"] for m in manifests] == chain
    assert manifests[1]["incremental_from"] == chain[0]  # a child streams only its delta
    assert all(s["exported"] for s in a.get("/v1/states").json() if s["state_id"] in chain)

    imported = b.post("/v1/states/import", json={"state_id": chain[-1]})
    assert imported.status_code == 201, imported.text
    assert {s["state_id"] for s in b.get("/v1/states").json()} >= set(chain)  # parents came first
    served = b.prepare(THREE_STEPS, scripts)
    assert [t["cached"] for t in executes(served)] == [True, True, True]
    assert psql(served["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"


def test_a_corrupted_stream_is_refused_and_nothing_is_recorded(hosts, scripts):
    a, b, env = hosts
    built = a.prepare(["-f", "schema.sql"], scripts)
    state_id = executes(built)[0]["output_state_id"]
    a.post(f"/v1/states/{state_id}/export")
    objects = open_object_store(Settings(data_dir=a.data_dir, **{k[6:].lower(): v for k, v in env.items()}))
    key = f"default/states/{state_id}/stream"
    data = bytearray(objects.open(key).read())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the stream
    objects.put_bytes(key, bytes(data))

    refused = b.post("/v1/states/import", json={"state_id": state_id})
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_argument" and "checksum mismatch" in refused.json()["message"]
    assert b.get(f"/v1/states/{state_id}").status_code == 404
    datasets = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", b.env["SQLRS_ZFS_DATASET"]],
                              capture_output=True, text=True, check=True).stdout
    assert state_id not in datasets and ".tmp-" not in datasets
