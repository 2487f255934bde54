"""Compressed, signed exports: a manifest proves which installation wrote it and what its stream
is; an altered one, one signed by a key not trusted, or an unsigned one (unless allowed) is
refused before anything is received. Real drivers (copy, btrfs), real S3 server."""
from __future__ import annotations

import hashlib
import json
import os

import pytest
from pydantic import ValidationError

from appliance.control.models import State
from appliance.errors import ManifestRefused
from appliance.settings import Settings
from appliance.transfer import signing
from appliance.transfer.streams import Progress, export_state, import_state, manifest_key, stream_key
from tests.support.objectstores import CHAIN, ORG, Host, build_chain, export_chain, files_of, leftovers, state_rows


def manifest_body(host: Host, state_id: str) -> dict:
    with host.ctx.objects.open(manifest_key(ORG, state_id)) as reader:
        return json.loads(reader.read())


def put_manifest(host: Host, state_id: str, body: dict) -> None:
    host.ctx.objects.put_bytes(manifest_key(ORG, state_id), json.dumps(body).encode())


def refused_import(host: Host, state_id: str) -> ManifestRefused:
    with host.active() as ctx, pytest.raises(ManifestRefused) as refused:
        import_state(ctx, ORG, state_id)
    assert state_rows(host) == [] and leftovers(host) == []  # nothing received, nothing recorded
    return refused.value


@pytest.mark.parametrize("field,value", [("task_hash", "hash-evil"), ("stream_sha256", "0" * 64),
                                         ("parent_state_id", None), ("compression", "none")])
def test_an_altered_manifest_is_refused_and_nothing_is_received(hosts, field, value):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    put_manifest(a, "s2", {**manifest_body(a, "s2"), field: value})
    assert refused_import(b, "s3").code == "bad_signature"


def test_a_manifest_signed_by_a_key_not_trusted_is_refused_until_the_key_is_trusted(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    stranger = signing.Ed25519PrivateKey.generate()
    for state_id in CHAIN:  # another installation's export of the same chain
        put_manifest(a, state_id, signing.sign(manifest_body(a, state_id), stranger))
    refused = refused_import(b, "s3")
    assert refused.code == "untrusted_signature" and refused.details["key_id"] == signing.key_id(stranger.public_key())

    trusted = b.ctx.settings.trusted_keys + [signing.public_text(stranger.public_key())]
    b.ctx.settings = b.ctx.settings.model_copy(update={"trusted_keys": trusted})
    with b.active() as ctx:
        assert import_state(ctx, ORG, "s3").state_id == "s3"
    assert files_of(b, "s3") == files_of(a, "s3")


def test_a_signature_moved_onto_another_states_manifest_is_refused(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    put_manifest(a, "s1", {**manifest_body(a, "s1"), "signature": manifest_body(a, "s2")["signature"]})
    assert refused_import(b, "s1").code == "bad_signature"


def write_format_1_export(host: Host, state_id: str) -> None:
    """An export as the previous release wrote it: the driver's stream as it is, an unsigned manifest."""
    with host.active() as ctx:
        state = State.get(State.state_id == state_id)
        command = ctx.store.send_state_command(ORG, state_id, None)
        ctx.runner.pipe_from(command.argv, lambda stream: ctx.objects.put_stream(stream_key(ORG, state_id), stream))
        with ctx.objects.open(stream_key(ORG, state_id)) as reader:
            body = reader.read()
        put_manifest(host, state_id, {
            "format_version": 1, "state_id": state_id, "parent_state_id": state.parent_state_id,
            "incremental_from": None, "image_id": state.image_id, "prepare_kind": state.prepare_kind,
            "task_hash": state.task_hash, "summary": state.summary, "size_bytes": state.size_bytes,
            "driver": ctx.store.driver.name, "format": command.format,
            "stream_sha256": hashlib.sha256(body).hexdigest(), "stream_bytes": len(body),
            "exported_at": "2026-01-01T00:00:00Z"})


def test_an_unsigned_format_1_export_is_refused_unless_unsigned_imports_are_allowed(hosts):
    a, b = hosts
    build_chain(a)
    write_format_1_export(a, "s1")
    assert refused_import(b, "s1").code == "unsigned_manifest"

    b.ctx.settings = b.ctx.settings.model_copy(update={"allow_unsigned_imports": True})
    with b.active() as ctx:
        assert import_state(ctx, ORG, "s1").state_id == "s1"
    assert files_of(b, "s1") == files_of(a, "s1")


def test_exporting_a_state_whose_export_is_of_format_1_writes_a_signed_one(hosts):
    a, _ = hosts
    build_chain(a)
    write_format_1_export(a, "s1")
    with a.active() as ctx:
        manifest = export_state(ctx, ORG, "s1")
    assert (manifest.format_version, manifest.compression) == (2, "zstd") and manifest.signature is not None
    assert manifest_body(a, "s1")["signature"] == manifest.signature


def test_compression_shrinks_a_compressible_state(hosts):
    a, b = hosts
    store = a.ctx.store
    volume = store.create_volume(ORG, "v1")
    (volume / "table").write_bytes(b"".join(b"%08d,some row of text,%d\n" % (n, n % 7) for n in range(300_000)))
    with a.active():
        size = store.commit_state(ORG, "v1", "big")
        store.destroy_volume(ORG, "v1")
        State.create(org=ORG, state_id="big", image_id="postgres:15", prepare_kind="psql", task_hash="h",
                     size_bytes=size, host=a.ctx.host)
    with a.active() as ctx:
        manifest = export_state(ctx, ORG, "big")
    assert manifest.raw_bytes is not None and manifest.raw_bytes > 8_000_000
    assert manifest.stream_bytes * 5 < manifest.raw_bytes  # it is the compressed stream that is stored
    assert a.ctx.objects.stat(stream_key(ORG, "big")).size == manifest.stream_bytes
    with b.active() as ctx:
        import_state(ctx, ORG, "big")
    assert files_of(b, "big") == files_of(a, "big")


class Recorded(Progress):
    def __init__(self) -> None:
        self.totals: list[int] = []
        self.steps: list[int] = []

    def total(self, nbytes: int) -> None:
        self.totals.append(nbytes)

    def advance(self, nbytes: int) -> None:
        self.steps.append(nbytes)


def test_export_and_import_report_their_progress(hosts):
    a, b = hosts
    build_chain(a)
    exported, imported = Recorded(), Recorded()
    with a.active() as ctx:
        manifest = export_state(ctx, ORG, "s1", exported)
    assert exported.totals == [manifest.size_bytes] and sum(exported.steps) == manifest.raw_bytes
    with a.active() as ctx:
        export_state(ctx, ORG, "s2")
    with b.active() as ctx:
        import_state(ctx, ORG, "s2", imported)
    stored = sum(a.ctx.objects.stat(stream_key(ORG, s)).size for s in ("s1", "s2"))
    assert imported.totals == [stored] and sum(imported.steps) == stored


def test_the_signing_key_is_made_once_private_with_its_public_key_beside_it(hosts):
    a, _ = hosts
    key = signing.signing_key(a.ctx.settings)
    path = a.ctx.settings.signing_key_path
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert open(f"{path}.pub").read().strip() == signing.public_text(key.public_key())
    assert signing.key_id(signing.signing_key(a.ctx.settings).public_key()) == signing.key_id(key.public_key())


@pytest.mark.parametrize("text", ["not base64!", "AAAA", ""])
def test_a_trusted_key_that_is_not_a_raw_ed25519_key_is_refused_by_the_settings(text):
    with pytest.raises(ValidationError, match="trusted key"):
        Settings(trusted_keys=[text])
