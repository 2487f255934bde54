"""What only the copy driver has to get right: a copy that fails half-way leaves nothing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner
from appliance.storage.copy import CopyDriver
from appliance.storage.store import SnapshotStore
from tests.support.filesystems import small_tmpfs

ORG = "acme"


@pytest.fixture
def small_filesystem(tmp_path: Path, runner: Runner):
    """A 2 MiB tmpfs, so a copy of a 1.5 MiB volume runs out of space half-way."""
    with small_tmpfs(tmp_path / "small", runner) as mountpoint:
        yield mountpoint


def test_a_commit_that_runs_out_of_space_leaves_no_state_and_no_temporary(
        small_filesystem: Path, runner: Runner):
    store = SnapshotStore(small_filesystem, CopyDriver(runner))
    volume = store.create_volume(ORG, "v1")
    for name in ("a", "b", "c"):
        (volume / name).write_bytes(os.urandom(512 * 1024))
    with pytest.raises(CommandFailed):
        store.commit_state(ORG, "v1", "s1")
    assert os.listdir(store.state_path(ORG, "s1").parent) == []


def test_a_snapshot_onto_an_existing_path_is_refused(tmp_path: Path, runner: Runner):
    (tmp_path / "volume").mkdir()
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        CopyDriver(runner).snapshot(tmp_path / "volume", tmp_path / "taken")
