"""What only the zfs driver promises: datasets, read-only states, clone dependencies, streams."""
from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from appliance.errors import Conflict
from appliance.shell import Runner
from appliance.storage.store import SnapshotStore
from appliance.storage.zfs import (
    ZfsDriver,
    dataset_exists,
    dataset_mountpoint,
    destroy_dataset,
    get_property,
    pool_exists,
)
from tests.support.zfs import file_backed_pool, zfs_driver_on_fresh_dataset

ORG = "acme"
BIG = 50 * 1024**2


@pytest.fixture
def zfs_store(request, runner: Runner) -> SnapshotStore:
    driver, root = zfs_driver_on_fresh_dataset(request, runner)
    root.mkdir(exist_ok=True)
    return SnapshotStore(root, driver)


@pytest.fixture(scope="module")
def second_pool(zfs_pool, tmp_path_factory, runner: Runner):
    """Another pool, standing in for another host: zfs looks up a delta's parent pool-wide."""
    with file_backed_pool(runner, tmp_path_factory.mktemp("zfs-second")) as dataset_and_mountpoint:
        yield dataset_and_mountpoint


def committed(store: SnapshotStore, state_id: str, files: dict[str, bytes], volume_id: str = "v1") -> Path:
    volume = store.volume_path(ORG, volume_id)
    if not volume.exists():
        store.create_volume(ORG, volume_id)
    for name, content in files.items():
        (volume / name).write_bytes(content)
    store.commit_state(ORG, volume_id, state_id)
    return store.state_path(ORG, state_id)


def dataset(store: SnapshotStore, path: Path) -> str:
    return store.driver.dataset_of(path)


def test_every_layout_directory_is_a_dataset_mounted_at_its_path(zfs_store: SnapshotStore, runner: Runner):
    state = committed(zfs_store, "s1", {"data": b"x"})
    for path in (state, state.parent, state.parent.parent, zfs_store.volume_path(ORG, "v1")):
        assert dataset_mountpoint(runner, dataset(zfs_store, path)) == path


def test_destroying_all_removes_every_dataset_the_store_made_and_keeps_its_own(zfs_store: SnapshotStore,
                                                                                runner: Runner):
    state = committed(zfs_store, "s1", {"data": b"x"})
    zfs_store.clone_state(ORG, "s1", "v2")
    zfs_store.destroy_all()
    assert not dataset_exists(runner, dataset(zfs_store, state))
    assert not dataset_exists(runner, dataset(zfs_store, zfs_store.root / "orgs"))
    assert dataset_exists(runner, zfs_store.driver.dataset)


def test_a_state_is_read_only(zfs_store: SnapshotStore):
    state = committed(zfs_store, "s1", {"data": b"x"})
    with pytest.raises(OSError) as excinfo:
        (state / "new").write_bytes(b"y")
    assert excinfo.value.errno == errno.EROFS


def test_a_state_owns_its_snapshot_and_the_build_volume_is_its_clone(zfs_store: SnapshotStore, runner: Runner):
    state = committed(zfs_store, "s1", {"data": b"x"})
    volume = zfs_store.volume_path(ORG, "v1")
    assert get_property(runner, dataset(zfs_store, state), "origin") == "-"
    assert get_property(runner, dataset(zfs_store, volume), "origin") == dataset(zfs_store, state) + "@state"


def test_destroying_a_state_with_a_live_clone_is_a_conflict_and_destroys_nothing(zfs_store: SnapshotStore):
    committed(zfs_store, "s1", {"data": b"hello"})
    clone = zfs_store.clone_state(ORG, "s1", "c1")
    with pytest.raises(Conflict, match="c1"):
        zfs_store.destroy_state(ORG, "s1")
    assert (zfs_store.state_path(ORG, "s1") / "data").read_bytes() == b"hello"
    assert (clone / "data").read_bytes() == b"hello"
    assert (zfs_store.volume_path(ORG, "v1") / "data").read_bytes() == b"hello"


def test_destroying_a_state_with_a_child_state_is_a_conflict(zfs_store: SnapshotStore):
    committed(zfs_store, "s1", {"data": b"first"})
    zfs_store.clone_state(ORG, "s1", "v2")
    committed(zfs_store, "s2", {"data": b"second"}, volume_id="v2")
    zfs_store.destroy_volume(ORG, "v2")
    with pytest.raises(Conflict, match="s2"):
        zfs_store.destroy_state(ORG, "s1")
    assert zfs_store.has_state(ORG, "s1")


def test_destroying_the_clone_then_the_state_works(zfs_store: SnapshotStore, runner: Runner):
    state = committed(zfs_store, "s1", {"data": b"hello"})
    zfs_store.clone_state(ORG, "s1", "c1")
    zfs_store.destroy_volume(ORG, "c1")
    zfs_store.destroy_volume(ORG, "v1")
    zfs_store.destroy_state(ORG, "s1")
    assert not dataset_exists(runner, dataset(zfs_store, state))
    assert zfs_store.list_states() == [] and zfs_store.list_volumes() == []


def test_destroying_a_state_leaves_its_build_volume_whole_and_independent(zfs_store: SnapshotStore, runner: Runner):
    committed(zfs_store, "s1", {"data": b"hello"})
    zfs_store.destroy_state(ORG, "s1")
    volume = zfs_store.volume_path(ORG, "v1")
    assert (volume / "data").read_bytes() == b"hello"
    assert get_property(runner, dataset(zfs_store, volume), "origin") == "-"
    assert not dataset_exists(runner, dataset(zfs_store, volume) + "@state")


def test_a_volume_can_be_committed_again_after_its_state_was_destroyed(zfs_store: SnapshotStore):
    committed(zfs_store, "s1", {"data": b"first"})
    zfs_store.destroy_state(ORG, "s1")
    state = committed(zfs_store, "s2", {"data": b"second"})
    assert (state / "data").read_bytes() == b"second"


def test_used_bytes_is_the_data_referenced(zfs_store: SnapshotStore):
    size = 4 * 1024**2
    used = zfs_store.commit_state(ORG, committed_volume(zfs_store, os.urandom(size)), "s1")
    assert size <= used < size + 1024**2


def committed_volume(store: SnapshotStore, content: bytes) -> str:
    volume = store.create_volume(ORG, "v1")
    (volume / "data").write_bytes(content)
    return "v1"


def test_a_clone_of_a_large_state_uses_almost_nothing_of_its_own(zfs_store: SnapshotStore, runner: Runner):
    volume = zfs_store.create_volume(ORG, "v1")
    with open(volume / "data", "wb") as fh:
        for _ in range(BIG // 1024**2):
            fh.write(os.urandom(1024**2))
    zfs_store.commit_state(ORG, "v1", "s1")
    clone = zfs_store.clone_state(ORG, "s1", "c1")
    clone_ds = dataset(zfs_store, clone)
    assert int(get_property(runner, clone_ds, "referenced")) >= BIG
    assert int(get_property(runner, clone_ds, "used")) < BIG // 100


def test_a_quota_stops_writes_beyond_it(zfs_store: SnapshotStore, runner: Runner):
    volume = zfs_store.create_volume(ORG, "v1")
    zfs_store.driver.set_quota(volume, 2 * 1024**2)
    with pytest.raises(OSError) as excinfo:
        with open(volume / "data", "wb") as fh:
            for _ in range(8):
                fh.write(os.urandom(1024**2))
                fh.flush()
                os.fsync(fh.fileno())
    assert excinfo.value.errno in (errno.EDQUOT, errno.ENOSPC)
    assert get_property(runner, dataset(zfs_store, volume), "refquota") == str(2 * 1024**2)


def test_removing_a_quota_lifts_it(zfs_store: SnapshotStore, runner: Runner):
    volume = zfs_store.create_volume(ORG, "v1")
    zfs_store.driver.set_quota(volume, 2 * 1024**2)
    zfs_store.driver.set_quota(volume, None)
    assert get_property(runner, dataset(zfs_store, volume), "refquota") == "0"


def test_the_pool_check_sees_existing_datasets_only(zfs_pool, runner: Runner):
    pool_dataset, mountpoint = zfs_pool
    assert pool_exists(runner, pool_dataset)
    assert not pool_exists(runner, pool_dataset + "/no-such-dataset")
    assert dataset_mountpoint(runner, pool_dataset) == mountpoint


# -- streams into another pool --------------------------------------------------------------------
def send(store: SnapshotStore, state_id: str, parent_id: str | None, runner: Runner) -> tuple[bytes, str]:
    command = store.send_state_command(ORG, state_id, parent_id)
    chunks: list[bytes] = []
    runner.pipe_from(command.argv, lambda out: chunks.append(out.read()))
    return b"".join(chunks), command.format


@pytest.fixture
def other_store(request, second_pool, runner: Runner) -> SnapshotStore:
    pool_dataset, _ = second_pool
    name = os.urandom(6).hex()
    runner(["zfs", "create", f"{pool_dataset}/{name}"])
    driver = ZfsDriver(runner, f"{pool_dataset}/{name}")
    request.addfinalizer(lambda: destroy_dataset(runner, f"{pool_dataset}/{name}", with_clones=True))
    return SnapshotStore(driver.root, driver)


def test_a_full_stream_received_on_another_pool_has_the_same_files(zfs_store, other_store, runner: Runner):
    committed(zfs_store, "s1", {"data": b"hello", "blob": os.urandom(300_000)})
    stream, fmt = send(zfs_store, "s1", None, runner)
    other_store.receive_state(ORG, "s1", io.BytesIO(stream), fmt, None)
    for name in ("data", "blob"):
        assert (other_store.state_path(ORG, "s1") / name).read_bytes() == \
            (zfs_store.state_path(ORG, "s1") / name).read_bytes()


def test_a_chain_of_two_received_on_another_pool_is_a_parent_and_its_clone(zfs_store, other_store, runner: Runner):
    committed(zfs_store, "s1", {"data": b"first", "blob": os.urandom(300_000)})
    zfs_store.clone_state(ORG, "s1", "v2")
    committed(zfs_store, "s2", {"data": b"second", "more": b"more"}, volume_id="v2")
    first, fmt = send(zfs_store, "s1", None, runner)
    second, _ = send(zfs_store, "s2", "s1", runner)
    assert len(second) < len(first)
    other_store.receive_state(ORG, "s1", io.BytesIO(first), fmt, None)
    other_store.receive_state(ORG, "s2", io.BytesIO(second), fmt, "s1")
    for state_id, names in (("s1", ("data", "blob")), ("s2", ("data", "blob", "more"))):
        for name in names:
            assert (other_store.state_path(ORG, state_id) / name).read_bytes() == \
                (zfs_store.state_path(ORG, state_id) / name).read_bytes()
    received_s2 = dataset(other_store, other_store.state_path(ORG, "s2"))
    assert get_property(runner, received_s2, "origin") == dataset(other_store, other_store.state_path(ORG, "s1")) + "@state"


def test_a_received_state_is_read_only_and_clones_like_a_local_one(zfs_store, other_store, runner: Runner):
    committed(zfs_store, "s1", {"data": b"hello"})
    stream, fmt = send(zfs_store, "s1", None, runner)
    other_store.receive_state(ORG, "s1", io.BytesIO(stream), fmt, None)
    with pytest.raises(OSError):
        (other_store.state_path(ORG, "s1") / "new").write_bytes(b"y")
    clone = other_store.clone_state(ORG, "s1", "c1")
    (clone / "data").write_bytes(b"changed")
    assert (other_store.state_path(ORG, "s1") / "data").read_bytes() == b"hello"
