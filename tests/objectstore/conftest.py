"""A real S3 server for the object-store tests: ``moto``'s server as a separate process on
loopback (never an in-process fake), and both object-store backends behind one fixture."""
from __future__ import annotations

from pathlib import Path

import pytest
from appliance.objectstore.local import LocalObjectStore
from appliance.objectstore.s3 import S3ObjectStore
from appliance.objectstore.store import ObjectStore
from tests.support.s3 import ACCESS_KEY, SECRET_KEY

@pytest.fixture(params=["local", "s3"])
def objects(request, tmp_path: Path) -> ObjectStore:
    """Every object-store backend: a local directory and a real S3 server."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_server").store(prefix="appliance")


def incomplete_uploads(store: ObjectStore) -> list[str]:
    """Multipart uploads still open on the server (none for a directory store), read with a
    second S3 client, independent of the code under test."""
    if not isinstance(store, S3ObjectStore):
        return [p.name for p in (store.root / ".tmp").glob("*")] if (store.root / ".tmp").exists() else []
    import boto3
    client = boto3.client("s3", endpoint_url=f"http://{store.endpoint}", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


# -- two appliances ("hosts") sharing one object store ----------------------------------------------
from contextlib import contextmanager  # noqa: E402

from appliance.objectstore.ownership import OwnedObjectStore  # noqa: E402
from appliance.context import AppContext  # noqa: E402
from appliance.control.db import close_database, open_database  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.control.models import database_proxy  # noqa: E402
from appliance.runtime.process import ProcessRuntime  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.shell import Runner  # noqa: E402
from appliance.storage.btrfs import BtrfsDriver  # noqa: E402
from appliance.storage.copy import CopyDriver  # noqa: E402
from appliance.storage.store import SnapshotStore  # noqa: E402


INSTALLATION_ID = "0" * 32


class Host:
    """One appliance: its own Control DB (a SQLite file), snapshot store and context."""

    def __init__(self, name: str, data_dir: Path, store_root: Path, driver, objects: ObjectStore) -> None:
        store_root.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data_dir, storage_backend=driver.name, btrfs_image="off",
                            host_id=name)
        self.db = open_database(f"sqlite:///{data_dir / 'control.db'}")
        migrate(self.db)
        runner = Runner()
        self.ctx = AppContext(settings=settings, db=self.db, runner=runner,
                              store=SnapshotStore(store_root, driver), runtime=ProcessRuntime(runner))
        # both hosts see the same object store, as hosts of one installation
        self.ctx.objects = OwnedObjectStore(objects, INSTALLATION_ID)

    @contextmanager
    def active(self):
        """Bind the models to this host's Control DB (they share one process-wide proxy)."""
        database_proxy.initialize(self.db)
        yield self.ctx


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
