"""States move between installations through S3: export a chain from appliance A (its own zfs
pool, its own prefix of the bucket), carry the objects to B's prefix as an operator would (each
installation owns its prefix and never reads or deletes another's), import it into appliance B
(another pool), and B serves the same states with the same data. Exports and imports are jobs
the appliances' workers run (with progress); B trusts A's signing key (``trusted_keys``) and
refuses manifests that were altered or signed by a key it does not trust."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import uuid

import pytest

from appliance.objectstore.store import open_object_store
from appliance.settings import Settings
from appliance.transfer import signing
from tests.support.appliance import appliance_on
from tests.support.polling import wait_until
from tests.support.prepares import THREE_STEPS, executes
from tests.support.psql import psql
from tests.support.s3 import s3_env
from tests.support.tmpdirs import public_tmpdir
from tests.support.transfers import finished


def key_of(path) -> str:
    """A signing key made at ``path`` (as an installation makes its own); its public key."""
    return signing.public_text(signing.signing_key(Settings(signing_key_file=path)).public_key())


@pytest.fixture(scope="module")
def hosts(request, s3_server):
    bucket = f"transfer-{uuid.uuid4().hex[:12]}"
    keys = public_tmpdir("sqlrs-keys-")
    env_a, env_b = s3_env(s3_server, bucket, "a"), s3_env(s3_server, bucket, "b")
    env_a["SQLRS_SIGNING_KEY_FILE"] = str(keys / "a.key")
    env_b["SQLRS_TRUSTED_KEYS"] = json.dumps([key_of(keys / "a.key")])  # B trusts A's exports
    for env in (env_a, env_b):  # progress 5 times a second (1 by default): a short test sees it move
        env["SQLRS_TRANSFER_PROGRESS_SECONDS"] = "0.2"
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env_a))
        b = stack.enter_context(contextlib.contextmanager(appliance_on)(request, "zfs", env_b))
        yield a, b, (objects_of(a, env_a), objects_of(b, env_b))


def objects_of(app, env: dict[str, str]):
    return open_object_store(Settings(data_dir=app.data_dir, **{k[6:].lower(): v for k, v in env.items()
                                                                if k.startswith(("SQLRS_S3_", "SQLRS_ARTIFACTS"))}))


def export(app, state_id: str) -> dict:
    transfer, _ = finished(app, app.post(f"/v1/states/{state_id}/export"))
    assert transfer["status"] == "succeeded", transfer
    return transfer["manifest"]


def carry(objects, state_id: str) -> None:
    """Copy a state's exported objects from A's prefix to B's, metadata (checksums) included."""
    source, target = objects
    for info in source.list(f"default/states/{state_id}/"):
        target.put_bytes(info.key, source.open(info.key).read(), metadata=source.stat(info.key).metadata)


def test_a_chain_exported_from_one_host_is_served_by_another_with_the_same_ids_and_data(hosts, scripts):
    a, b, objects = hosts
    built = a.prepare(THREE_STEPS, scripts)
    chain = [t["output_state_id"] for t in executes(built)]
    manifests = [export(a, state_id) for state_id in chain]
    assert [m["state_id"] for m in manifests] == chain
    assert manifests[1]["incremental_from"] == chain[0]  # a child streams only its delta
    assert all(s["exported"] for s in a.get("/v1/states").json() if s["state_id"] in chain)
    for state_id in chain:
        carry(objects, state_id)

    imported, _ = finished(b, b.post("/v1/states/import", json={"state_id": chain[-1]}))
    assert imported["status"] == "succeeded", imported
    assert {s["state_id"] for s in b.get("/v1/states").json()} >= set(chain)  # parents came first
    served = b.prepare(THREE_STEPS, scripts)
    assert [t["cached"] for t in executes(served)] == [True, True, True]
    assert psql(served["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"


def test_a_corrupted_stream_is_refused_and_nothing_is_recorded(hosts, scripts):
    a, b, objects = hosts
    built = a.prepare(["-f", "schema.sql"], scripts)
    state_id = executes(built)[0]["output_state_id"]
    export(a, state_id)
    carry(objects, state_id)
    key, carried = f"default/states/{state_id}/stream", objects[1]
    data = bytearray(carried.open(key).read())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the stream
    carried.put_bytes(key, bytes(data), metadata=carried.stat(key).metadata)

    refused, _ = finished(b, b.post("/v1/states/import", json={"state_id": state_id}))
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "invalid_argument" and "checksum mismatch" in refused["error"]["message"]
    assert b.get(f"/v1/states/{state_id}").status_code == 404
    datasets = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", b.env["SQLRS_ZFS_DATASET"]],
                              capture_output=True, text=True, check=True).stdout
    assert state_id not in datasets and ".tmp-" not in datasets


def b_datasets(b) -> str:
    return subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", b.env["SQLRS_ZFS_DATASET"]],
                          capture_output=True, text=True, check=True).stdout


def carried_manifest(objects, state_id: str) -> dict:
    with objects[1].open(f"default/states/{state_id}/manifest.json") as reader:
        return json.loads(reader.read())


def put_manifest(objects, state_id: str, body: dict) -> None:
    key = f"default/states/{state_id}/manifest.json"
    objects[1].put_bytes(key, json.dumps(body).encode(), metadata=objects[1].stat(key).metadata)


@pytest.mark.parametrize("tamper,code", [
    (lambda body: {**body, "task_hash": "0" * 64}, "bad_signature"),  # altered after signing
    (lambda body: signing.sign(body, signing.Ed25519PrivateKey.generate()), "untrusted_signature"),  # a key B does not trust
    (lambda body: {k: v for k, v in body.items() if k != "signature"}, "unsigned_manifest"),
])
def test_an_altered_or_foreign_manifest_is_refused_and_nothing_changes(hosts, scripts, tamper, code):
    a, b, objects = hosts
    built = a.prepare(["-f", "schema.sql", "-c", f"select '{code}'"], scripts)
    state_id = executes(built)[-1]["output_state_id"]
    export(a, state_id)
    for copy_of in [t["output_state_id"] for t in executes(built)]:
        carry(objects, copy_of)
    put_manifest(objects, state_id, tamper(carried_manifest(objects, state_id)))
    before = b.get("/v1/states").json()

    refused = b.post("/v1/states/import", json={"state_id": state_id})
    assert refused.status_code == 400 and refused.json()["code"] == code, refused.text
    assert b.get("/v1/states").json() == before and state_id not in b_datasets(b)


def test_a_large_state_is_exported_and_imported_with_rising_progress_and_compressed(hosts, scripts):
    """About 300 MB of table (a hex column, as compressible as much real data, and a padding one
    that compresses to nothing), through both appliances' workers."""
    a, b, objects = hosts
    fill = ("create table big as select g as id, md5(g::text) as h, repeat(chr(65 + g % 26), 32) as pad "
            "from generate_series(1, 3000000) g")
    built = a.prepare(["-c", fill], scripts)
    state_id = executes(built)[-1]["output_state_id"]
    assert a.get(f"/v1/states/{state_id}").json()["size_bytes"] > 250 * 1024**2

    exported, export_progress = finished(a, a.post(f"/v1/states/{state_id}/export"))
    assert exported["status"] == "succeeded", exported
    assert len(export_progress) >= 2 and export_progress == sorted(export_progress), export_progress
    manifest = exported["manifest"]
    assert manifest["compression"] == "zstd" and manifest["stream_bytes"] * 2 < manifest["raw_bytes"]

    carry(objects, state_id)
    imported, import_progress = finished(b, b.post("/v1/states/import", json={"state_id": state_id}))
    assert imported["status"] == "succeeded", imported
    assert imported["bytes_done"] == imported["bytes_total"] == manifest["stream_bytes"]
    assert len(import_progress) >= 2 and import_progress == sorted(import_progress), import_progress
    served = b.prepare(["-c", fill], scripts)
    assert psql(served["result"]["dsn"], "select count(*) from big").stdout.strip() == "3000000"


def worker_pid(app, transfer_id: str) -> int:
    with sqlite3.connect(app.data_dir / "control.db") as db:
        (worker,) = db.execute("select worker from transfer where transfer_id = ?", (transfer_id,)).fetchone()
    return int(worker.rsplit(":", 1)[1])


def test_a_worker_killed_mid_export_leaves_no_transfer_running_and_the_export_resumes_when_asked_again(hosts, scripts):
    a, _, objects = hosts
    fill = ("create table big2 as select g as id, md5(g::text) as h, md5((-g)::text) as h2 "
            "from generate_series(1, 3000000) g")
    state_id = executes(a.prepare(["-c", fill], scripts))[-1]["output_state_id"]
    queued = a.post(f"/v1/states/{state_id}/export").json()
    url = queued["status_url"]
    wait_until(lambda: (t := a.get(url).json())["status"] == "running" and t["bytes_done"] > (t["bytes_total"] or 1e12) * 0.4,
               60, "the export to stream 40 % of the state (a few upload parts)")

    os.kill(worker_pid(a, queued["transfer_id"]), signal.SIGKILL)

    ended = wait_until(lambda: (t := a.get(url).json())["status"] != "running" and t, 60, "the transfer to end")
    assert (ended["status"], ended["error"]["code"]) == ("failed", "worker_lost"), ended
    assert not objects[0].exists(f"default/states/{state_id}/manifest.json")  # no export half-committed
    again, _ = finished(a, a.post(f"/v1/states/{state_id}/export"))
    assert again["status"] == "succeeded" and again["transfer_id"] != queued["transfer_id"], again
    logs = "".join(p.read_text(errors="replace") for p in sorted((a.data_dir / "logs").glob("worker-*.log*")))
    resumed = [line for line in logs.splitlines() if f"exported state {state_id}" in line]
    assert len(resumed) == 1 and "resumed an unfinished upload" in resumed[0], resumed  # not from zero
