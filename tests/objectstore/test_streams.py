"""Export a chain of states from one store into the object store and import it into another:
real drivers (copy, btrfs), real S3 server, two Control DBs."""
from __future__ import annotations

import hashlib
import json

import pytest
import zstandard

from appliance.control.models import State
from appliance.errors import CommandFailed, InvalidArgument, NotFound
from appliance.transfer import signing
from appliance.transfer.streams import export_state, import_state, manifest_key, stream_key
from tests.support.objectstores import (
    CHAIN,
    ORG,
    build_chain,
    export_chain,
    files_of,
    incomplete_uploads,
    leftovers,
    state_rows,
)


def test_a_chain_imported_into_another_store_has_the_same_ids_and_the_same_data(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    with b.active() as ctx:
        imported = import_state(ctx, ORG, "s3")
    assert imported.state_id == "s3" and imported.host == "host-b"
    assert state_rows(b) == [("s1", None), ("s2", "s1"), ("s3", "s2")]
    for state_id in CHAIN:
        assert files_of(b, state_id) == files_of(a, state_id)


def test_importing_a_chain_receives_only_the_states_that_are_missing(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    with b.active() as ctx:
        first = import_state(ctx, ORG, "s1")
        import_state(ctx, ORG, "s3")
        assert State.get(State.state_id == "s1").created_at == first.created_at
    assert [s for s, _ in state_rows(b)] == list(CHAIN)


def test_importing_a_state_that_is_present_changes_nothing(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    with a.active() as ctx:
        again = import_state(ctx, ORG, "s2")
    assert again.host == "host-a" and state_rows(a) == [("s1", None), ("s2", "s1"), ("s3", "s2")]


def test_the_manifest_describes_the_stream(hosts):
    a, _ = hosts
    build_chain(a)
    manifest = export_chain(a)["s2"]
    with a.ctx.objects.open(stream_key(ORG, "s2")) as stored:
        body = stored.read()
    assert (manifest.stream_sha256, manifest.stream_bytes) == (hashlib.sha256(body).hexdigest(), len(body))
    assert (manifest.state_id, manifest.parent_state_id, manifest.task_hash, manifest.driver, manifest.format_version) \
        == ("s2", "s1", "hash-s2", a.ctx.store.driver.name, 2)
    assert manifest.compression == "zstd" and manifest.raw_bytes == len(zstandard.ZstdDecompressor().decompressobj()
                                                                         .decompress(body))
    assert manifest.signature is not None and manifest.signature["algorithm"] == "ed25519"


def test_a_child_is_a_delta_when_its_parent_was_exported_and_the_driver_can_send_one(hosts):
    a, _ = hosts
    build_chain(a)
    manifests = export_chain(a)
    can_delta = a.ctx.store.send_state_command(ORG, "s2", "s1").parent is not None
    assert manifests["s1"].incremental_from is None
    assert manifests["s2"].incremental_from == ("s1" if can_delta else None)


def test_a_child_exported_before_its_parent_is_a_full_stream(hosts):
    a, _ = hosts
    build_chain(a)
    with a.active() as ctx:
        assert export_state(ctx, ORG, "s2").incremental_from is None


def test_exporting_again_answers_the_first_manifest(hosts):
    a, _ = hosts
    build_chain(a)
    first = export_chain(a)
    with a.active() as ctx:
        assert export_state(ctx, ORG, "s3") == first["s3"]


def test_a_flipped_byte_in_the_stored_stream_is_refused_and_nothing_is_recorded(hosts):
    a, b = hosts
    build_chain(a)
    export_chain(a)
    with a.ctx.objects.open(stream_key(ORG, "s1")) as stored:
        body = bytearray(stored.read())
    body[len(body) // 2] ^= 0x01
    a.ctx.objects.put_bytes(stream_key(ORG, "s1"), bytes(body))
    with b.active() as ctx, pytest.raises(InvalidArgument, match="state s1: checksum mismatch") as error:
        import_state(ctx, ORG, "s1")
    assert error.value.code == "invalid_argument"
    assert state_rows(b) == [] and leftovers(b) == []


def test_a_stream_of_another_driver_is_refused_before_anything_is_received(hosts):
    a, b = hosts
    build_chain(a)
    manifest = export_chain(a)["s1"]
    foreign = signing.sign({**manifest.to_dict(), "driver": "zfs", "format": "zfs-send"},
                           signing.signing_key(a.ctx.settings))  # signed: the format check is what refuses it
    a.ctx.objects.put_bytes(manifest_key(ORG, "s1"), json.dumps(foreign).encode())
    with b.active() as ctx, pytest.raises(InvalidArgument, match="zfs"):
        import_state(ctx, ORG, "s3")
    assert state_rows(b) == [] and leftovers(b) == []


def test_importing_a_state_that_was_never_exported_is_not_found(hosts):
    _, b = hosts
    with b.active() as ctx, pytest.raises(NotFound, match="s9"):
        import_state(ctx, ORG, "s9")


def test_exporting_an_unknown_state_is_not_found(hosts):
    a, _ = hosts
    with a.active() as ctx, pytest.raises(NotFound):
        export_state(ctx, ORG, "s9")


def test_a_producer_that_fails_midway_leaves_no_object_and_no_upload(objects, runner):
    argv = ["sh", "-c", "head -c 40000000 /dev/zero; echo 'send failed' >&2; exit 3"]
    with pytest.raises(CommandFailed, match="send failed"):
        runner.pipe_from(argv, lambda stream: objects.put_stream(f"{ORG}/states/s1/stream", stream))
    assert not objects.exists(f"{ORG}/states/s1/stream") and incomplete_uploads(objects) == []
