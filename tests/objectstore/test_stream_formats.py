"""Imports are decided by the stream's format, not by the driver that wrote it: the copy and
LVM stores both write and read tar, so each imports the other's exports (LVM through its strict
double of the lvm2 commands, tests/support/lvm.py; tar and the files are real)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.control.models import State
from appliance.errors import InvalidArgument
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.copy import CopyDriver
from appliance.storage.lvm import LvmDriver
from appliance.transfer.streams import export_state, import_state
from tests.support.lvm import GIB, POOL, VG, LvmHost
from tests.support.objectstores import Host

ORG = "acme"


def lvm_driver() -> LvmDriver:
    return LvmDriver(LvmHost().runner(), f"{VG}/{POOL}", GIB, "xfs")


def host(name: str, tmp_path: Path, driver, objects) -> Host:
    return Host(name, tmp_path / name, tmp_path / f"{name}-store", driver, objects)


def one_state(source: Host) -> dict[str, bytes]:
    """A state with a few files, recorded in the host's Control DB; returns its files."""
    files = {"PG_VERSION": b"15\n", "data": os.urandom(32 * 1024)}
    store = source.ctx.store
    with source.active():
        volume = store.create_volume(ORG, "v1")
        for name, content in files.items():
            (volume / name).write_bytes(content)
        size = store.commit_state(ORG, "v1", "s1")
        store.destroy_volume(ORG, "v1")
        State.create(org=ORG, state_id="s1", image_id="postgres:15@sha256:x", prepare_kind="psql",
                     task_hash="hash-s1", size_bytes=size, host=source.ctx.host)
    return files


def exported_into(source: Host, target: Host) -> dict[str, bytes]:
    with source.active() as ctx:
        export_state(ctx, ORG, "s1")
    with target.active() as ctx:
        import_state(ctx, ORG, "s1")
        root = ctx.store.state_path(ORG, "s1")
        return {name: (root / name).read_bytes() for name in sorted(os.listdir(root))}


def test_a_copy_store_export_imports_into_an_lvm_store(tmp_path, objects):
    copy, lvm = host("copy", tmp_path, CopyDriver(Runner()), objects), host("lvm", tmp_path, lvm_driver(), objects)
    files = one_state(copy)
    assert exported_into(copy, lvm) == files


def test_an_lvm_store_export_imports_into_a_copy_store(tmp_path, objects):
    lvm, copy = host("lvm", tmp_path, lvm_driver(), objects), host("copy", tmp_path, CopyDriver(Runner()), objects)
    files = one_state(lvm)
    assert exported_into(lvm, copy) == files


def test_a_stream_in_a_format_the_store_cannot_receive_is_refused(tmp_path, objects):
    copy, btrfs = host("copy", tmp_path, CopyDriver(Runner()), objects), host("btrfs", tmp_path, BtrfsDriver(Runner()), objects)
    one_state(copy)
    with pytest.raises(InvalidArgument, match="'tar'"):
        exported_into(copy, btrfs)
