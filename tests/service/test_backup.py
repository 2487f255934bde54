"""`sqlrs-appliance backup` / `restore`: the Control DB survives its own loss, a damaged or altered
backup changes nothing, a running appliance keeps its Control DB, and a PostgreSQL Control DB
round-trips through pg_dump and pg_restore with its password never on a command line."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.api.auth import create_token
from appliance.control.db import close_database, open_database
from appliance.control.migrations import current_version, latest_version, migrate
from appliance.control.models import ApiToken
from appliance.errors import InvalidArgument
from appliance.service.backup import backup, restore
from appliance.settings import Settings
from appliance.shell import Runner
from tests.e2e.harness import Appliance
from tests.support.appliance import appliance_on
from tests.support.psql import psql


@pytest.fixture(scope="module")
def appliance(request) -> Iterator[Appliance]:
    """One real embedded appliance (SQLite Control DB, btrfs store) for the module."""
    yield from appliance_on(request, "btrfs")


def service(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`sqlrs-appliance ARGS` as an operator runs it, on ``data_dir``."""
    return subprocess.run([sys.executable, "-m", "appliance.service.main", *args, "--data-dir", str(data_dir)],
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=120)


def listed(app: Appliance) -> dict[str, list]:
    """What the API lists: jobs with their status, states, instances with their status and DSN."""
    jobs = app.get("/v1/prepare-jobs").json()
    states = app.get("/v1/states").json()
    instances = app.get("/v1/instances").json()
    return {"jobs": sorted((j["job_id"], j["status"]) for j in jobs),
            "states": sorted(s["state_id"] for s in states),
            "instances": sorted((i["instance_id"], i["status"], i.get("dsn")) for i in instances)}


def leftovers(data_dir: Path) -> list[str]:
    """What a restore may leave in the data dir: the replaced DB, or its staging."""
    return sorted(p.name for p in data_dir.iterdir() if ".before-restore-" in p.name or p.name.startswith(".sqlrs-"))


# -- with a real running appliance ------------------------------------------------------------
def test_backup_destroy_restore_keeps_jobs_states_and_instances(appliance, scripts, tmp_path):
    status = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    assert status["status"] == "succeeded", status["error"]
    dsn = status["result"]["dsn"]
    before = listed(appliance)
    assert before["jobs"] and before["states"] and before["instances"]
    env = {**appliance.env, "SQLRS_DATA_DIR": str(appliance.data_dir)}
    archive = tmp_path / "control.tar.gz"

    made = service(appliance.data_dir, "backup", str(archive), env=env)  # while it serves
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o777 == 0o600

    appliance.stop()
    for name in ("control.db", "control.db-wal", "control.db-shm"):
        (appliance.data_dir / name).unlink(missing_ok=True)
    restored = service(appliance.data_dir, "restore", str(archive), env=env)
    assert restored.returncode == 0, restored.stderr
    assert f"schema version {latest_version()}" in restored.stdout

    appliance.start()
    assert listed(appliance) == before
    assert psql(dsn, "select count(*) from items").stdout.strip() == "100"


def test_restore_is_refused_while_up_serves_the_data_dir(appliance, tmp_path):
    env = {**appliance.env, "SQLRS_DATA_DIR": str(appliance.data_dir)}
    archive = tmp_path / "control.tar.gz"
    assert service(appliance.data_dir, "backup", str(archive), env=env).returncode == 0
    before = listed(appliance)

    refused = service(appliance.data_dir, "restore", str(archive), env=env)
    assert refused.returncode == 1
    assert (f"error [appliance_running]: another `sqlrs-appliance up` (pid {appliance.process.pid}) is serving "
            f"{appliance.data_dir}: stop it before restoring") in refused.stderr
    assert leftovers(appliance.data_dir) == []
    assert listed(appliance) == before
    assert appliance.get("/v1/ready").status_code == 200


# -- a SQLite Control DB, no appliance needed ---------------------------------------------------
@pytest.fixture
def sqlite_control_db(tmp_path) -> Path:
    """A migrated SQLite Control DB with one token in it, as `up` leaves it; returns the data dir."""
    data_dir = tmp_path / "data"
    db = open_database(f"sqlite:///{data_dir / 'control.db'}")
    migrate(db)
    create_token("default", "kept")
    close_database(db)
    return data_dir


def rewritten(archive: Path, out: Path, *, payload=lambda data: data, manifest=lambda fields: fields) -> Path:
    """A copy of ``archive`` with its payload and/or its manifest changed."""
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    fields = manifest(json.loads(members["manifest.json"]))
    members = {"manifest.json": json.dumps(fields).encode(), fields["payload"]: payload(members[fields["payload"]])}
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def flip_a_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def newer_schema(fields: dict) -> dict:
    return {**fields, "schema_version": latest_version() + 1}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("change,code", [
    ({"payload": flip_a_byte}, "backup_checksum_mismatch"),
    ({"manifest": newer_schema}, "backup_schema_too_new"),
], ids=["altered-payload", "newer-schema"])
def test_an_altered_or_newer_backup_is_refused_and_changes_nothing(sqlite_control_db, tmp_path, change, code):
    archive = tmp_path / "control.tar.gz"
    assert service(sqlite_control_db, "backup", str(archive)).returncode == 0
    bad = rewritten(archive, tmp_path / "bad.tar.gz", **change)
    create_token_in(sqlite_control_db, "after-backup")
    files_before = sorted(p.name for p in sqlite_control_db.iterdir())
    digest_before = sha256(sqlite_control_db / "control.db")

    refused = service(sqlite_control_db, "restore", str(bad))
    assert refused.returncode == 1
    assert f"error [{code}]:" in refused.stderr and "nothing was restored" in refused.stderr
    assert sorted(p.name for p in sqlite_control_db.iterdir()) == files_before
    assert sha256(sqlite_control_db / "control.db") == digest_before


def test_a_restore_keeps_the_replaced_control_db_beside_the_restored_one(sqlite_control_db, tmp_path):
    archive = tmp_path / "control.tar.gz"
    assert service(sqlite_control_db, "backup", str(archive)).returncode == 0
    create_token_in(sqlite_control_db, "after-backup")

    restored = service(sqlite_control_db, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    [previous] = sqlite_control_db.glob("control.db.before-restore-*")
    assert f"kept as {previous}" in restored.stdout
    assert token_names(sqlite_control_db / "control.db") == ["kept"]
    assert token_names(previous) == ["after-backup", "kept"]


def test_an_older_backup_is_restored_as_it_is_and_the_restore_says_to_migrate(sqlite_control_db, tmp_path):
    db = open_database(f"sqlite:///{sqlite_control_db / 'control.db'}")
    db.execute_sql("DELETE FROM schema_version WHERE version = ?", (latest_version(),))  # as the release before
    close_database(db)
    archive = tmp_path / "control.tar.gz"
    assert service(sqlite_control_db, "backup", str(archive)).returncode == 0

    restored = service(sqlite_control_db, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "run `sqlrs-appliance migrate`" in restored.stdout
    assert schema_version(sqlite_control_db / "control.db") == latest_version() - 1


def create_token_in(data_dir: Path, name: str) -> None:
    db = open_database(f"sqlite:///{data_dir / 'control.db'}")
    create_token("default", name)
    close_database(db)


def token_names(path: Path) -> list[str]:
    db = open_database(f"sqlite:///{path}")
    try:
        return sorted(t.name for t in ApiToken.select())
    finally:
        close_database(db)


def schema_version(path: Path) -> int:
    db = open_database(f"sqlite:///{path}")
    try:
        return current_version(db)
    finally:
        close_database(db)


# -- a PostgreSQL Control DB ------------------------------------------------------------------
class Recorded(Runner):
    """The real runner, remembering each program's argv and environment."""

    def __init__(self) -> None:
        self.runs: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv, **kw):
        self.runs.append(([str(a) for a in argv], dict(kw.get("env") or {})))
        return super().__call__(argv, **kw)

    def pipe_from(self, argv, sink, **kw):
        self.runs.append(([str(a) for a in argv], dict(kw.get("env") or {})))
        return super().pipe_from(argv, sink, **kw)

    def pipe_into(self, argv, source, **kw):
        self.runs.append(([str(a) for a in argv], dict(kw.get("env") or {})))
        return super().pipe_into(argv, source, **kw)


def test_a_postgresql_control_db_round_trips_through_pg_dump_and_pg_restore(control_postgres, tmp_path):
    url = control_postgres.new_database_url()
    settings = Settings(data_dir=tmp_path / "data", database_url=url, storage_backend="copy", btrfs_image="off")
    db = open_database(url)
    migrate(db)
    create_token("default", "kept")
    close_database(db)
    archive, runner = tmp_path / "control.tar.gz", Recorded()

    made = backup(settings, archive, runner=runner)
    assert (made.engine, made.schema_version) == ("postgresql", latest_version())
    assert archive.stat().st_mode & 0o777 == 0o600
    db = open_database(url)
    create_token("default", "after-backup")
    close_database(db)
    with pytest.raises(InvalidArgument, match="pass --yes"):
        restore(settings, archive, runner=runner)
    restore(settings, archive, confirmed=True, runner=runner)

    db = open_database(url)
    assert sorted(t.name for t in ApiToken.select()) == ["kept"]
    assert current_version(db) == latest_version()
    close_database(db)
    tools = [Path(argv[0]).name for argv, _ in runner.runs]
    assert tools == ["pg_dump", "pg_restore", "psql"]
    assert all(control_postgres.password not in " ".join(argv) for argv, _ in runner.runs)
    assert all(env.get("PGPASSWORD") == control_postgres.password for argv, env in runner.runs
               if Path(argv[0]).name != "pg_restore")  # pg_restore only reads the file: no connection
