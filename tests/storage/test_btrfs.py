"""What only the btrfs driver promises: states and clones are real subvolume snapshots."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver, is_subvolume
from appliance.storage.store import SnapshotStore

ORG = "acme"
BIG = 50 * 1024**2


@pytest.fixture
def btrfs_store(btrfs_dir: Path, runner: Runner) -> SnapshotStore:
    return SnapshotStore(btrfs_dir / "store", BtrfsDriver(runner))


def subvolume_field(runner: Runner, path: Path, field: str) -> str:
    for line in runner(["btrfs", "subvolume", "show", str(path)]).stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == field:
            return value.strip()
    raise AssertionError(f"{field} not shown for {path}")


def exclusive_bytes(runner: Runner, path: Path) -> int:
    out = runner(["btrfs", "filesystem", "du", "-s", "--raw", str(path)]).stdout
    return int(out.splitlines()[1].split()[1])


def test_a_state_is_a_snapshot_of_its_volume(btrfs_store: SnapshotStore, runner: Runner):
    volume = btrfs_store.create_volume(ORG, "v1")
    btrfs_store.commit_state(ORG, "v1", "s1")
    state = btrfs_store.state_path(ORG, "s1")
    assert subvolume_field(runner, state, "Parent UUID") == subvolume_field(runner, volume, "UUID")


def test_a_clone_is_a_snapshot_of_its_state(btrfs_store: SnapshotStore, runner: Runner):
    btrfs_store.create_volume(ORG, "v1")
    btrfs_store.commit_state(ORG, "v1", "s1")
    clone = btrfs_store.clone_state(ORG, "s1", "c1")
    state = btrfs_store.state_path(ORG, "s1")
    assert subvolume_field(runner, clone, "Parent UUID") == subvolume_field(runner, state, "UUID")


def test_cloning_a_large_state_shares_its_blocks(btrfs_store: SnapshotStore, runner: Runner):
    volume = btrfs_store.create_volume(ORG, "v1")
    with open(volume / "big", "wb") as fh:
        for _ in range(BIG // (1024**2)):
            fh.write(os.urandom(1024**2))
    assert btrfs_store.commit_state(ORG, "v1", "s1") >= BIG
    clone = btrfs_store.clone_state(ORG, "s1", "c1")
    assert exclusive_bytes(runner, clone) < 1024**2


def test_a_state_rejects_writes(btrfs_store: SnapshotStore):
    btrfs_store.create_volume(ORG, "v1")
    btrfs_store.commit_state(ORG, "v1", "s1")
    with pytest.raises(OSError) as raised:
        (btrfs_store.state_path(ORG, "s1") / "new").write_text("x")
    assert raised.value.errno == errno.EROFS


def test_destroy_deletes_a_read_only_state_subvolume(btrfs_store: SnapshotStore):
    btrfs_store.create_volume(ORG, "v1")
    btrfs_store.commit_state(ORG, "v1", "s1")
    btrfs_store.destroy_state(ORG, "s1")
    assert not os.path.lexists(btrfs_store.state_path(ORG, "s1"))


def test_destroy_removes_a_plain_directory_left_by_a_crash(btrfs_dir: Path, runner: Runner):
    leftover = btrfs_dir / "half-made"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "sub" / "f").write_text("x")
    assert not is_subvolume(leftover)
    BtrfsDriver(runner).destroy(leftover)
    assert not os.path.lexists(leftover)


def test_committing_a_plain_directory_fails_and_leaves_no_state_and_no_temporary(
        btrfs_store: SnapshotStore):
    plain = btrfs_store.volume_path(ORG, "v1")
    plain.mkdir(parents=True)
    with pytest.raises(CommandFailed):
        btrfs_store.commit_state(ORG, "v1", "s1")
    states = btrfs_store.state_path(ORG, "s1").parent
    assert os.listdir(states) == []


def test_a_fork_is_a_snapshot_of_the_volume_in_use(btrfs_store: SnapshotStore, runner: Runner):
    btrfs_store.create_volume("acme", "v1")
    fork = btrfs_store.fork_volume("acme", "v1", "v2")
    assert is_subvolume(fork)
    assert runner(["btrfs", "property", "get", "-ts", str(fork), "ro"]).stdout.strip() == "ro=false"
