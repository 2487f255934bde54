"""The behaviour every snapshot driver must have, run against each one on a real filesystem."""
from __future__ import annotations

import io
import os
import shutil
import stat
from pathlib import Path

import pytest

from appliance.errors import CommandFailed, Conflict, InvalidArgument, NotFound, NotSupported
from appliance.shell import Runner
from appliance.storage.base import SendCommand, SnapshotDriver
from appliance.storage.store import SnapshotStore

ORG = "acme"


def write(path: Path, text: str) -> None:
    path.write_text(text)


def volume_with(store: SnapshotStore, volume_id: str, text: str) -> Path:
    volume = store.create_volume(ORG, volume_id)
    write(volume / "data", text)
    return volume


def temporaries(store: SnapshotStore) -> list[str]:
    return [str(p) for p in store.root.glob("orgs/*/*/.tmp-*")]


def test_every_driver_satisfies_the_protocol(store: SnapshotStore):
    assert isinstance(store.driver, SnapshotDriver)


def test_a_new_volume_is_an_empty_writable_directory(store: SnapshotStore):
    volume = store.create_volume(ORG, "v1")
    write(volume / "data", "x")
    assert os.listdir(volume) == ["data"]
    assert volume == store.volume_path(ORG, "v1")


def test_creating_a_volume_that_exists_raises_conflict(store: SnapshotStore):
    store.create_volume(ORG, "v1")
    with pytest.raises(Conflict):
        store.create_volume(ORG, "v1")


def test_a_committed_state_holds_what_the_volume_held(store: SnapshotStore):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    assert (store.state_path(ORG, "s1") / "data").read_text() == "hello"


def test_a_state_is_unaffected_by_later_writes_to_the_volume(store: SnapshotStore):
    volume = volume_with(store, "v1", "before")
    store.commit_state(ORG, "v1", "s1")
    write(volume / "data", "after")
    write(volume / "new", "new")
    assert (store.state_path(ORG, "s1") / "data").read_text() == "before"
    assert not (store.state_path(ORG, "s1") / "new").exists()


def test_commit_returns_at_least_the_bytes_written(store: SnapshotStore):
    volume = store.create_volume(ORG, "v1")
    (volume / "data").write_bytes(os.urandom(256 * 1024))
    assert store.commit_state(ORG, "v1", "s1") >= 256 * 1024


def test_a_clone_of_a_state_is_writable(store: SnapshotStore):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    clone = store.clone_state(ORG, "s1", "c1")
    write(clone / "data", "changed")
    assert (clone / "data").read_text() == "changed"


def test_writing_to_a_clone_leaves_the_state_unchanged(store: SnapshotStore):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    clone = store.clone_state(ORG, "s1", "c1")
    write(clone / "data", "changed")
    write(clone / "extra", "extra")
    assert (store.state_path(ORG, "s1") / "data").read_text() == "hello"
    assert not (store.state_path(ORG, "s1") / "extra").exists()


def test_clones_of_one_state_are_independent_of_each_other(store: SnapshotStore):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    first = store.clone_state(ORG, "s1", "c1")
    second = store.clone_state(ORG, "s1", "c2")
    write(first / "data", "first")
    assert (second / "data").read_text() == "hello"


def test_a_base_can_be_committed_and_cloned(store: SnapshotStore):
    volume_with(store, "v1", "base")
    store.commit_base(ORG, "v1", "pg-15.4")
    clone = store.clone_base(ORG, "pg-15.4", "c1")
    assert (clone / "data").read_text() == "base"


def test_cloning_an_unknown_state_raises_not_found(store: SnapshotStore):
    with pytest.raises(NotFound):
        store.clone_state(ORG, "missing", "c1")
    assert store.list_volumes() == []


def test_a_state_of_one_org_is_invisible_to_another(store: SnapshotStore):
    volume_with(store, "v1", "secret")
    store.commit_state(ORG, "v1", "s1")
    assert store.has_state(ORG, "s1")
    assert not store.has_state("other", "s1")
    with pytest.raises(NotFound):
        store.clone_state("other", "s1", "c1")


def test_ownership_and_modes_survive_commit_and_clone(store: SnapshotStore, database_owner):
    uid, gid = database_owner
    volume = store.create_volume(ORG, "v1")
    pgdata = volume / "pgdata"
    pgdata.mkdir(mode=0o700)
    (pgdata / "PG_VERSION").write_text("15\n")
    os.chmod(pgdata / "PG_VERSION", 0o600)
    for path in (pgdata, pgdata / "PG_VERSION"):
        os.chown(path, uid, gid)
    store.commit_state(ORG, "v1", "s1")
    clone = store.clone_state(ORG, "s1", "c1")
    for root in (store.state_path(ORG, "s1"), clone):
        d, f = os.stat(root / "pgdata"), os.stat(root / "pgdata" / "PG_VERSION")
        assert (d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode)) == (uid, gid, 0o700)
        assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (uid, gid, 0o600)


def test_a_fork_of_a_volume_is_an_independent_writable_copy_or_not_supported_and_leaves_nothing(
        store: SnapshotStore):
    volume = volume_with(store, "v1", "before")
    try:
        fork = store.fork_volume(ORG, "v1", "v2")
    except NotSupported:
        assert not store.driver.forks_in_use
        assert not os.path.lexists(store.volume_path(ORG, "v2")) and temporaries(store) == []
        return
    assert store.driver.forks_in_use
    write(volume / "data", "after")
    write(fork / "only-in-the-fork", "x")
    assert (fork / "data").read_text() == "before"
    assert not (volume / "only-in-the-fork").exists()


def test_destroying_a_volume_twice_is_not_an_error(store: SnapshotStore):
    volume_with(store, "v1", "x")
    store.destroy_volume(ORG, "v1")
    store.destroy_volume(ORG, "v1")
    assert not store.volume_path(ORG, "v1").exists()


def test_destroying_a_state_removes_it_and_is_idempotent(store: SnapshotStore):
    volume_with(store, "v1", "x")
    store.commit_state(ORG, "v1", "s1")
    store.destroy_state(ORG, "s1")
    store.destroy_state(ORG, "s1")
    assert not store.has_state(ORG, "s1")


def test_destroying_a_base_removes_it(store: SnapshotStore):
    volume_with(store, "v1", "x")
    store.commit_base(ORG, "v1", "b1")
    store.destroy_base(ORG, "b1")
    assert store.list_bases() == []


def test_destroying_a_volume_with_read_only_directories_removes_it(store: SnapshotStore):
    volume = volume_with(store, "v1", "x")
    locked = volume / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    os.chmod(locked, 0o500)
    store.destroy_volume(ORG, "v1")
    assert not volume.exists()


def test_committing_a_missing_volume_raises_not_found_and_leaves_nothing(store: SnapshotStore):
    with pytest.raises(NotFound):
        store.commit_state(ORG, "missing", "s1")
    assert not store.has_state(ORG, "s1")
    assert temporaries(store) == []


def test_a_volume_path_that_is_not_a_directory_is_not_found(store: SnapshotStore):
    broken = store.volume_path(ORG, "v1")
    broken.parent.mkdir(parents=True)
    broken.write_text("a regular file where a volume should be")
    with pytest.raises(NotFound):
        store.commit_state(ORG, "v1", "s1")
    assert temporaries(store) == []


def test_committing_to_an_existing_state_id_raises_conflict(store: SnapshotStore):
    volume = volume_with(store, "v1", "first")
    store.commit_state(ORG, "v1", "s1")
    write(volume / "data", "second")
    with pytest.raises(Conflict):
        store.commit_state(ORG, "v1", "s1")
    assert (store.state_path(ORG, "s1") / "data").read_text() == "first"
    assert temporaries(store) == []


def test_the_lists_show_what_exists_in_every_org(store: SnapshotStore):
    volume_with(store, "v1", "x")
    store.commit_state(ORG, "v1", "s1")
    store.commit_base(ORG, "v1", "b1")
    store.clone_state(ORG, "s1", "c1")
    store.create_volume("other", "v2")
    assert store.list_volumes() == [(ORG, "c1"), (ORG, "v1"), ("other", "v2")]
    assert store.list_states() == [(ORG, "s1")]
    assert store.list_bases() == [(ORG, "b1")]


def test_the_lists_of_an_empty_store_are_empty(store: SnapshotStore):
    assert (store.list_volumes(), store.list_states(), store.list_bases()) == ([], [], [])


def test_sweeping_removes_the_temporaries_a_crash_left_and_counts_them(store: SnapshotStore):
    volume_with(store, "v1", "x")
    store.commit_state(ORG, "v1", "s1")
    states = store.state_path(ORG, "s1").parent
    store.driver.snapshot(store.volume_path(ORG, "v1"), states / ".tmp-s2-abc")
    (store.volume_path(ORG, "v1").parent / ".tmp-c1-def").mkdir()
    assert store.sweep_temporaries() == 2
    assert temporaries(store) == []
    assert store.list_states() == [(ORG, "s1")]
    assert store.list_volumes() == [(ORG, "v1")]


def test_temporaries_are_not_listed(store: SnapshotStore):
    volume_with(store, "v1", "x")
    states = store.state_path(ORG, "s1").parent
    states.mkdir(parents=True)
    store.driver.snapshot(store.volume_path(ORG, "v1"), states / ".tmp-s1-abc")
    assert store.list_states() == []
    assert not store.has_state(ORG, "s1")


# -- streams: send a state, receive it into another store --------------------------------------
def sibling_store(store: SnapshotStore) -> SnapshotStore:
    """A second store on the same filesystem, standing in for another host."""
    root = store.root.parent / f"{store.root.name}-other"
    root.mkdir()
    return SnapshotStore(root, store.driver)


def send_to_file(store: SnapshotStore, state_id: str, parent_id: str | None, target: Path) -> SendCommand:
    command = store.send_state_command(ORG, state_id, parent_id)
    with open(target, "wb") as out:
        Runner().pipe_from(command.argv, lambda stream: shutil.copyfileobj(stream, out))
    return command


def chain_of_two(store: SnapshotStore) -> None:
    volume = volume_with(store, "v1", "first")
    store.commit_state(ORG, "v1", "s1")
    write(volume / "data", "second")
    write(volume / "more", "more")
    store.commit_state(ORG, "v1", "s2")


def test_a_sent_state_received_by_another_store_holds_the_same_files(store: SnapshotStore, tmp_path: Path):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    command = send_to_file(store, "s1", None, tmp_path / "s1.stream")
    other = sibling_store(store)
    with open(tmp_path / "s1.stream", "rb") as stream:
        other.receive_state(ORG, "s1", stream, command.format, None)
    assert (other.state_path(ORG, "s1") / "data").read_text() == "hello"
    assert temporaries(other) == []


def test_a_child_sent_against_its_parent_is_received_after_the_parent(store: SnapshotStore, tmp_path: Path):
    chain_of_two(store)
    first = send_to_file(store, "s1", None, tmp_path / "s1.stream")
    second = send_to_file(store, "s2", "s1", tmp_path / "s2.stream")
    other = sibling_store(store)
    for state_id, command, parent in (("s1", first, None), ("s2", second, "s1")):
        with open(tmp_path / f"{state_id}.stream", "rb") as stream:
            other.receive_state(ORG, state_id, stream, command.format, parent)
    assert (other.state_path(ORG, "s2") / "data").read_text() == "second"
    assert (other.state_path(ORG, "s2") / "more").read_text() == "more"
    assert (other.state_path(ORG, "s1") / "data").read_text() == "first"


def test_ownership_and_modes_survive_send_and_receive(store: SnapshotStore, database_owner, tmp_path: Path):
    uid, gid = database_owner
    volume = store.create_volume(ORG, "v1")
    os.chmod(volume, 0o700)
    os.chown(volume, uid, gid)
    (volume / "PG_VERSION").write_text("15\n")
    os.chmod(volume / "PG_VERSION", 0o600)
    os.chown(volume / "PG_VERSION", uid, gid)
    store.commit_state(ORG, "v1", "s1")
    command = send_to_file(store, "s1", None, tmp_path / "s1.stream")
    other = sibling_store(store)
    with open(tmp_path / "s1.stream", "rb") as stream:
        other.receive_state(ORG, "s1", stream, command.format, None)
    received = other.state_path(ORG, "s1")
    for path, mode in ((received, 0o700), (received / "PG_VERSION", 0o600)):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)


def test_a_received_state_can_be_cloned_into_a_writable_volume(store: SnapshotStore, tmp_path: Path):
    volume_with(store, "v1", "hello")
    store.commit_state(ORG, "v1", "s1")
    command = send_to_file(store, "s1", None, tmp_path / "s1.stream")
    other = sibling_store(store)
    with open(tmp_path / "s1.stream", "rb") as stream:
        other.receive_state(ORG, "s1", stream, command.format, None)
    clone = other.clone_state(ORG, "s1", "c1")
    write(clone / "data", "changed")
    assert (other.state_path(ORG, "s1") / "data").read_text() == "hello"


def test_a_truncated_stream_leaves_no_state_and_no_temporary(store: SnapshotStore, tmp_path: Path):
    volume = store.create_volume(ORG, "v1")
    (volume / "data").write_bytes(os.urandom(512 * 1024))
    store.commit_state(ORG, "v1", "s1")
    command = send_to_file(store, "s1", None, tmp_path / "s1.stream")
    whole = (tmp_path / "s1.stream").read_bytes()
    other = sibling_store(store)
    with pytest.raises(CommandFailed):
        other.receive_state(ORG, "s1", io.BytesIO(whole[: len(whole) // 2]), command.format, None)
    assert not other.has_state(ORG, "s1")
    assert temporaries(other) == [] and list(other.state_path(ORG, "s1").parent.iterdir()) == []


def test_a_stream_of_a_format_the_driver_does_not_know_is_refused(store: SnapshotStore):
    with pytest.raises(InvalidArgument):
        store.receive_state(ORG, "s1", io.BytesIO(b"x"), "no-such-format", None)
    assert not store.has_state(ORG, "s1") and temporaries(store) == []


def test_sending_an_unknown_state_raises_not_found(store: SnapshotStore):
    with pytest.raises(NotFound):
        store.send_state_command(ORG, "missing", None)
