"""Real services for the whole suite: a throwaway PostgreSQL cluster (for the Control DB on
PostgreSQL) and a private redis-server. Nothing here is faked."""
from __future__ import annotations

import os
import pwd
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from appliance.api.app import create_app
from appliance.api.auth import ensure_admin_token
from appliance.context import build_context
from appliance.control.db import close_database
from appliance.control.migrations import migrate
from appliance.errors import CommandFailed
from appliance.service.redis_server import PrivateRedis
from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.image import unmount
from tests.support.btrfs import btrfs_unavailable, destroy_everything
from tests.support.clusters import ClusterTemplates
from tests.support.postgres import ThrowawayPostgres
from tests.support.tmpdirs import public_tmpdir


@pytest.fixture(scope="session")
def runner() -> Runner:
    return Runner()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    """The appliance's own private redis-server (socket in a 0700 dir, password in a 0600 file)."""
    base = public_tmpdir("sqlrs-redis-")
    server = PrivateRedis(base / "redis", base / "redis.password")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(private_redis: PrivateRedis) -> str:
    """Its URL, password included."""
    return private_redis.url


@pytest.fixture
def redis(redis_url: str) -> Redis:
    client = Redis.from_url(redis_url)
    client.flushall()
    return client


@pytest.fixture(scope="session")
def cluster_templates(runner: Runner) -> Iterator[ClusterTemplates]:
    """Template Postgres clusters: one initdb per runtime for the whole session, copied (``cp -a``,
    as a clone would be) for every test that needs a cluster of its own."""
    templates = ClusterTemplates(public_tmpdir("sqlrs-templates-"), runner)
    yield templates
    shutil.rmtree(templates.root, ignore_errors=True)


@pytest.fixture(scope="session")
def control_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def control_db_url(request, tmp_path: Path) -> str:
    """Every model and API test runs against both Control DB engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return request.getfixturevalue("control_postgres").new_database_url()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server process (moto) on loopback, for the whole session."""
    from tests.support.s3 import S3Server
    server = S3Server(tmp_path_factory.mktemp("s3") / "server.log")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


# -- btrfs: one loop-mounted image for the whole session ------------------------------------
BTRFS_ROOT_BYTES = 512 * 1024**2


@pytest.fixture(scope="session")
def btrfs_root(tmp_path_factory, runner: Runner):
    """A fresh btrfs filesystem on a sparse image, mounted for the whole session."""
    if os.geteuid() != 0:
        btrfs_unavailable("not running as root")
    base = tmp_path_factory.mktemp("btrfs")
    image, mountpoint = base / "root.img", base / "mnt"
    mountpoint.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(BTRFS_ROOT_BYTES)
    try:
        runner(["mkfs.btrfs", "-q", str(image)])
        runner(["mount", "-o", "loop", str(image), str(mountpoint)])
    except (CommandFailed, FileNotFoundError) as exc:
        btrfs_unavailable(str(exc))
    yield mountpoint
    unmount(mountpoint, runner)
    image.unlink()


@pytest.fixture
def btrfs_dir(btrfs_root: Path, runner: Runner):
    """A private directory on the session's btrfs; its subvolumes are deleted afterwards."""
    directory = btrfs_root / uuid.uuid4().hex
    directory.mkdir()
    yield directory
    destroy_everything(directory, BtrfsDriver(runner))


@pytest.fixture(scope="session")
def database_owner() -> tuple[int, int]:
    """A non-root uid/gid like the one Postgres runs as."""
    try:
        entry = pwd.getpwnam("postgres")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


# -- zfs (zfs-fuse here, OpenZFS elsewhere) ---------------------------------------------------


# -- an in-process appliance context and API client on both Control DB engines ---------------
@pytest.fixture
def ctx(tmp_path: Path, control_db_url: str, redis_url: str, redis):
    settings = Settings(data_dir=tmp_path / "data", database_url=control_db_url, redis_url=redis_url,
                        storage_backend="copy", btrfs_image="off", max_bundle_bytes=256 * 1024,
                        max_bundle_files=50)
    context = build_context(settings)
    migrate(context.db)
    yield context
    close_database(context.db)


@pytest.fixture
def token(ctx) -> str:
    return ensure_admin_token(ctx.settings.admin_token_file, ctx.settings.default_org)


@pytest.fixture
def client(ctx, token):
    app = create_app(ctx)
    client = app.test_client()
    client.auth = {"Authorization": f"Bearer {token}"}
    return client


@pytest.fixture(scope="session")
def nomad_double():
    """The Nomad-API double as its own process, running tasks on the real Docker engine."""
    from tests.support.docker import running_nomad_double
    with running_nomad_double() as double:
        yield double


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """A user's working directory of SQL scripts."""
    marker = uuid.uuid4().hex  # every test builds its own states
    (tmp_path / "schema.sql").write_text(f"create table items /* {marker} */ (id int primary key, name text);\n")
    (tmp_path / "data.sql").write_text("insert into items select g, 'item ' || g from generate_series(1, 100) g;\n")
    (tmp_path / "more.sql").write_text("create index items_name on items (name);\n")
    return tmp_path
