"""The issue's must-show: a chain of real Postgres states exported from store A, imported into
store B (separate Control DB), and an instance started on B serves the same rows."""
from __future__ import annotations

import shutil

import pytest

from appliance.control.db import close_database
from appliance.control.models import State
from appliance.shell import Runner
from appliance.storage.copy import CopyDriver
from appliance.transfer.streams import export_state, import_state
from tests.runtime.pg import socket_psql
from tests.support.objectstores import Host
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir

ORG = "acme"
STEPS = ("CREATE TABLE t (n int)", "INSERT INTO t SELECT generate_series(1, 100)",
         "INSERT INTO t SELECT generate_series(101, 150)")


@pytest.fixture
def public_dir():
    """Under /tmp with 0755 parents: Postgres runs as an unprivileged user and must reach it."""
    path = public_tmpdir("sqlrs-artifacts-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_sql(host: Host, volume, sql: str, run_dir) -> str:
    runtime = host.ctx.runtime
    endpoint = runtime.start(volume, run_dir, port=free_tcp_port(), listen_host=None)
    try:
        return socket_psql(runtime, Runner(), endpoint, sql)
    finally:
        runtime.stop(volume, mode="fast")


def test_an_instance_started_from_an_imported_chain_serves_the_same_rows(public_dir, s3_server):
    objects = s3_server.store()
    a = Host("host-a", public_dir / "a", public_dir / "a" / "store", CopyDriver(Runner()), objects)
    b = Host("host-b", public_dir / "b", public_dir / "b" / "store", CopyDriver(Runner()), objects)
    try:
        store, runtime = a.ctx.store, a.ctx.runtime
        image = runtime.resolve_image("postgres")
        with a.active() as ctx:
            parent = None
            for n, sql in enumerate(STEPS, start=1):
                volume_id, state_id = f"v{n}", f"s{n}"
                if parent:
                    volume = store.clone_state(ORG, parent, volume_id)
                else:
                    volume = store.create_volume(ORG, volume_id)
                    runtime.init_cluster(volume, image)
                run_sql(a, volume, sql, public_dir / "run-a")
                size = store.commit_state(ORG, volume_id, state_id)
                store.destroy_volume(ORG, volume_id)
                State.create(org=ORG, state_id=state_id, parent_state_id=parent, image_id=image,
                             prepare_kind="psql", task_hash=f"h{n}", size_bytes=size, host="host-a")
                parent = state_id
            for n in range(1, 4):
                export_state(ctx, ORG, f"s{n}")
        with b.active() as ctx:
            import_state(ctx, ORG, "s3")
            volume = b.ctx.store.clone_state(ORG, "s3", "instance")
        assert run_sql(b, volume, "SELECT count(*), sum(n) FROM t", public_dir / "run-b") == "150|11325"
    finally:
        for host in (a, b):
            close_database(host.db)
