"""States move between installations through S3: export a chain from appliance A (its own zfs
pool, its own prefix of the bucket), carry the objects to B's prefix as an operator would (each
installation owns its prefix and never reads or deletes another's), import it into appliance B
(another pool), and B serves the same states with the same data."""
from __future__ import annotations

import contextlib
import subprocess
import uuid

import pytest

from appliance.objectstore.store import open_object_store
from appliance.settings import Settings
from tests.support.appliance import appliance_on
from tests.support.prepares import THREE_STEPS, executes
from tests.support.psql import psql
from tests.support.s3 import s3_env


@pytest.fixture(scope="module")
def hosts(request, s3_server):
    bucket = f"transfer-{uuid.uuid4().hex[:12]}"
    env_a, env_b = s3_env(s3_server, bucket, "a"), s3_env(s3_server, bucket, "b")
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env_a))
        b = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env_b))
        yield a, b, (objects_of(a, env_a), objects_of(b, env_b))


def objects_of(app, env: dict[str, str]):
    return open_object_store(Settings(data_dir=app.data_dir, **{k[6:].lower(): v for k, v in env.items()}))


def carry(objects, state_id: str) -> None:
    """Copy a state's exported objects from A's prefix to B's, metadata (checksums) included."""
    source, target = objects
    for info in source.list(f"default/states/{state_id}/"):
        target.put_bytes(info.key, source.open(info.key).read(), metadata=source.stat(info.key).metadata)


def test_a_chain_exported_from_one_host_is_served_by_another_with_the_same_ids_and_data(hosts, scripts):
    a, b, objects = hosts
    built = a.prepare(THREE_STEPS, scripts)
    chain = [t["output_state_id"] for t in executes(built)]
    manifests = [a.post(f"/v1/states/{state_id}/export").json() for state_id in chain]
    assert [m["state_id"] for m in manifests] == chain
    assert manifests[1]["incremental_from"] == chain[0]  # a child streams only its delta
    assert all(s["exported"] for s in a.get("/v1/states").json() if s["state_id"] in chain)
    for state_id in chain:
        carry(objects, state_id)

    imported = b.post("/v1/states/import", json={"state_id": chain[-1]})
    assert imported.status_code == 201, imported.text
    assert {s["state_id"] for s in b.get("/v1/states").json()} >= set(chain)  # parents came first
    served = b.prepare(THREE_STEPS, scripts)
    assert [t["cached"] for t in executes(served)] == [True, True, True]
    assert psql(served["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"


def test_a_corrupted_stream_is_refused_and_nothing_is_recorded(hosts, scripts):
    a, b, objects = hosts
    built = a.prepare(["-f", "schema.sql"], scripts)
    state_id = executes(built)[0]["output_state_id"]
    a.post(f"/v1/states/{state_id}/export")
    carry(objects, state_id)
    key, carried = f"default/states/{state_id}/stream", objects[1]
    data = bytearray(carried.open(key).read())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the stream
    carried.put_bytes(key, bytes(data), metadata=carried.stat(key).metadata)

    refused = b.post("/v1/states/import", json={"state_id": state_id})
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_argument" and "checksum mismatch" in refused.json()["message"]
    assert b.get(f"/v1/states/{state_id}").status_code == 404
    datasets = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", b.env["SQLRS_ZFS_DATASET"]],
                              capture_output=True, text=True, check=True).stdout
    assert state_id not in datasets and ".tmp-" not in datasets
