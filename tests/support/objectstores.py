"""Object stores in tests: the multipart uploads a store left open (read independently of the
code under test), two appliances ("hosts") sharing one object store, and a chain of three
states built and exported on one of them."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from appliance.context import AppContext
from appliance.control.db import open_database
from appliance.control.migrations import migrate
from appliance.control.models import State, database_proxy
from appliance.objectstore.ownership import OwnedObjectStore
from appliance.objectstore.s3 import S3ObjectStore
from appliance.objectstore.store import ObjectStore
from appliance.runtime.process import ProcessRuntime
from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.store import SnapshotStore
from appliance.transfer.manifest import Manifest
from appliance.transfer.streams import export_state
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
        # hosts of one installation share its signing key (beside their data directories)
        settings = Settings(data_dir=data_dir, storage_backend=driver.name, btrfs_image="off",
                            host_id=name, signing_key_file=data_dir.parent / "signing.key")
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


# -- a chain of states on a host ------------------------------------------------------------
ORG = "acme"
CHAIN = ("s1", "s2", "s3")


def build_chain(host: Host) -> None:
    """Three states, each a clone of its parent with one file changed and one added."""
    store = host.ctx.store
    with host.active():
        parent = None
        for n, state_id in enumerate(CHAIN, start=1):
            volume = store.clone_state(ORG, parent, f"v{n}") if parent else store.create_volume(ORG, f"v{n}")
            (volume / "data").write_text(f"version {n}")
            (volume / f"file{n}").write_bytes(os.urandom(64 * 1024))
            size = store.commit_state(ORG, f"v{n}", state_id)
            store.destroy_volume(ORG, f"v{n}")
            State.create(org=ORG, state_id=state_id, parent_state_id=parent, image_id="postgres:15@sha256:x",
                         prepare_kind="psql", task_hash=f"hash-{state_id}", summary=f"step {n}", size_bytes=size,
                         host=host.ctx.host)
            parent = state_id


def export_chain(host: Host) -> dict[str, Manifest]:
    with host.active() as ctx:
        return {state_id: export_state(ctx, ORG, state_id) for state_id in CHAIN}


def files_of(host: Host, state_id: str) -> dict[str, bytes]:
    root = host.ctx.store.state_path(ORG, state_id)
    return {name: (root / name).read_bytes() for name in sorted(os.listdir(root))}


def state_rows(host: Host) -> list[tuple[str, str | None]]:
    with host.active():
        return [(s.state_id, s.parent_state_id) for s in State.select().order_by(State.state_id)]


def leftovers(host: Host) -> list[str]:
    states = host.ctx.store.root / "orgs" / ORG / "states"
    return sorted(os.listdir(states)) if states.exists() else []
