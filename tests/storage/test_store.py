"""Driver-independent parts of the store: path validation and the no-replace rename."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.errors import Conflict
from appliance.shell import Runner
from appliance.storage.base import rename_no_replace
from appliance.storage.copy import CopyDriver
from appliance.storage.store import SnapshotStore


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", ".tmp-x", "-x", "Upper", "x" * 129, "a\x00b"])
def test_ids_that_are_not_one_safe_path_component_are_rejected(tmp_path: Path, bad: str):
    store = SnapshotStore(tmp_path, CopyDriver(Runner()))
    with pytest.raises(ValueError):
        store.state_path("acme", bad)
    with pytest.raises(ValueError):
        store.volume_path(bad, "v1")


def test_paths_carry_the_org_as_a_prefix(tmp_path: Path):
    store = SnapshotStore(tmp_path, CopyDriver(Runner()))
    assert store.state_path("acme", "s1") == tmp_path / "orgs" / "acme" / "states" / "s1"
    assert store.base_path("acme", "pg-15") == tmp_path / "orgs" / "acme" / "bases" / "pg-15"
    assert store.volume_path("acme", "v1") == tmp_path / "orgs" / "acme" / "volumes" / "v1"


def test_renaming_onto_an_existing_empty_directory_raises_conflict(tmp_path: Path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "data").write_text("new")
    (tmp_path / "taken").mkdir()
    with pytest.raises(Conflict):
        rename_no_replace(tmp_path / "new", tmp_path / "taken")
    assert (tmp_path / "new" / "data").read_text() == "new"
    assert list((tmp_path / "taken").iterdir()) == []


def test_renaming_to_a_free_name_moves_the_directory(tmp_path: Path):
    (tmp_path / "new").mkdir()
    rename_no_replace(tmp_path / "new", tmp_path / "final")
    assert (tmp_path / "final").is_dir() and not (tmp_path / "new").exists()


def test_the_store_says_which_paths_are_its_volumes(tmp_path: Path):
    store = SnapshotStore(tmp_path, CopyDriver(Runner()))
    store.create_volume("acme", "v1")
    store.create_volume("other", "v2")
    assert store.volume_paths() == [store.volume_path("acme", "v1"), store.volume_path("other", "v2")]
    assert store.is_volume_path(Path(os.path.realpath(store.volume_path("acme", "v1"))))
    assert not store.is_volume_path(Path(os.path.realpath(tmp_path / "orgs" / "acme" / "states" / "v1")))
    assert not store.is_volume_path(tmp_path.parent / "elsewhere" / "orgs" / "acme" / "volumes" / "v1")


def test_the_store_reports_the_space_of_its_filesystem(tmp_path: Path):
    total, free = SnapshotStore(tmp_path, CopyDriver(Runner())).disk_space()
    assert 0 <= free <= total
