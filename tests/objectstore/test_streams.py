"""Export a chain of states from one store into the object store and import it into another:
real drivers (copy, btrfs), real S3 server, two Control DBs."""
from __future__ import annotations

import hashlib
import os

import pytest

from appliance.control.models import State
from appliance.errors import CommandFailed, InvalidArgument, NotFound
from appliance.transfer.manifest import Manifest
from appliance.transfer.streams import export_state, import_state, manifest_key, stream_key
from tests.support.objectstores import Host, incomplete_uploads

ORG = "acme"
CHAIN = ("s1", "s2", "s3")


def build_chain(host: Host) -> None:
    """Three states, each a clone of its parent with one file changed and one added."""
    store = host.ctx.store
    with host.active():
        parent = None
        for n, state_id in enumerate(CHAIN, start=1):
            volume = store.clone_state(ORG, parent, f"v{n}") if parent else store.create_volume(ORG, f"v{n}")
            (volume / "data").write_text(f"version {n}")
            (volume / f"file{n}").write_bytes(os.urandom(64 * 1024))
            size = store.commit_state(ORG, f"v{n}", state_id)
            store.destroy_volume(ORG, f"v{n}")
            State.create(org=ORG, state_id=state_id, parent_state_id=parent, image_id="postgres:15@sha256:x",
                         prepare_kind="psql", task_hash=f"hash-{state_id}", summary=f"step {n}", size_bytes=size,
                         host=host.ctx.host)
            parent = state_id


def export_chain(host: Host) -> dict[str, Manifest]:
    with host.active() as ctx:
        return {state_id: export_state(ctx, ORG, state_id) for state_id in CHAIN}


def files_of(host: Host, state_id: str) -> dict[str, bytes]:
    root = host.ctx.store.state_path(ORG, state_id)
    return {name: (root / name).read_bytes() for name in sorted(os.listdir(root))}


def state_rows(host: Host) -> list[tuple[str, str | None]]:
    with host.active():
        return [(s.state_id, s.parent_state_id) for s in State.select().order_by(State.state_id)]


def leftovers(host: Host) -> list[str]:
    states = host.ctx.store.root / "orgs" / ORG / "states"
    return sorted(os.listdir(states)) if states.exists() else []


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
        == ("s2", "s1", "hash-s2", a.ctx.store.driver.name, 1)


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
    foreign = Manifest(**{**manifest.to_dict(), "driver": "zfs", "format": "zfs-send"})
    a.ctx.objects.put_bytes(manifest_key(ORG, "s1"), foreign.to_json())
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
