"""A real S3 server for the object-store tests: ``moto``'s server as a separate process on
loopback (never an in-process fake), both object-store backends behind one fixture, and two
appliances ("hosts") sharing one object store."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.control.db import close_database
from appliance.objectstore.local import LocalObjectStore
from appliance.objectstore.store import ObjectStore
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.copy import CopyDriver
from tests.support.objectstores import Host


@pytest.fixture(params=["local", "s3"])
def objects(request, tmp_path: Path) -> ObjectStore:
    """Every object-store backend: a local directory and a real S3 server."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_server").store(prefix="appliance")


@pytest.fixture(params=["copy", "btrfs"])
def store_roots(request, tmp_path: Path):
    """Roots for two stores on the filesystem each driver is meant for, and the driver."""
    if request.param == "copy":
        return CopyDriver(Runner()), tmp_path / "store-a", tmp_path / "store-b"
    base = request.getfixturevalue("btrfs_dir")
    return BtrfsDriver(Runner()), base / "store-a", base / "store-b"


@pytest.fixture
def hosts(store_roots, objects: ObjectStore, tmp_path: Path):
    driver, root_a, root_b = store_roots
    a = Host("host-a", tmp_path / "a", root_a, driver, objects)
    b = Host("host-b", tmp_path / "b", root_b, driver, objects)
    yield a, b
    for host in (a, b):
        close_database(host.db)
