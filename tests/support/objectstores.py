"""Object stores in tests: the multipart uploads a store left open (read independently of the
code under test), and two appliances ("hosts") sharing one object store."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from appliance.context import AppContext
from appliance.control.db import open_database
from appliance.control.migrations import migrate
from appliance.control.models import database_proxy
from appliance.objectstore.ownership import OwnedObjectStore
from appliance.objectstore.s3 import S3ObjectStore
from appliance.objectstore.store import ObjectStore
from appliance.runtime.process import ProcessRuntime
from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.store import SnapshotStore
from tests.support.s3 import ACCESS_KEY, SECRET_KEY


def incomplete_uploads(store: ObjectStore) -> list[str]:
    """Multipart uploads still open on the server (none for a directory store), read with a
    second S3 client, independent of the code under test."""
    if not isinstance(store, S3ObjectStore):
        return [p.name for p in (store.root / ".tmp").glob("*")] if (store.root / ".tmp").exists() else []
    import boto3
    client = boto3.client("s3", endpoint_url=f"http://{store.endpoint}", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


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
