"""A real S3 server for the object-store tests: ``moto``'s server as a separate process on
loopback (never an in-process fake), and both object-store backends behind one fixture."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import urllib3

from appliance.artifacts.local import LocalObjectStore
from appliance.artifacts.s3 import S3ObjectStore
from appliance.artifacts.store import ObjectStore
from tests.conftest import free_tcp_port

ACCESS_KEY, SECRET_KEY = "test-access-key", "test-secret-key-never-logged"


class S3Server:
    """``python -m moto.server`` on 127.0.0.1; started once per session."""

    def __init__(self, log: Path) -> None:
        self.port = free_tcp_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._log = open(log, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                         "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_ready(self, attempts: int = 300) -> None:
        http = urllib3.PoolManager(retries=False, timeout=1.0)
        for _ in range(attempts):
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3 server exited with {self.process.returncode}")
            try:
                http.request("GET", f"http://{self.endpoint}/")
                return
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the S3 server did not answer")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()

    def store(self, prefix: str = "") -> S3ObjectStore:
        """A store on a fresh bucket, so tests never see each other's objects."""
        return S3ObjectStore(self.endpoint, f"b-{uuid.uuid4().hex[:20]}", prefix, access_key=ACCESS_KEY,
                             secret_key=SECRET_KEY, secure=False, region="us-east-1")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "server.log")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


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
from tests.storage.conftest import btrfs_dir, btrfs_root, database_owner  # noqa: E402,F401


class Host:
    """One appliance: its own Control DB (a SQLite file), snapshot store and context."""

    def __init__(self, name: str, data_dir: Path, store_root: Path, driver, objects: ObjectStore) -> None:
        store_root.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data_dir, storage_backend=driver.name, btrfs_image="off")
        self.db = open_database(f"sqlite:///{data_dir / 'control.db'}")
        migrate(self.db)
        runner = Runner()
        self.ctx = AppContext(settings=settings, db=self.db, runner=runner,
                              store=SnapshotStore(store_root, driver), runtime=ProcessRuntime(runner), host=name)
        self.ctx.objects = objects  # both hosts see the same object store

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
