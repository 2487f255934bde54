"""`sqlrs-appliance backup` and `restore`: the Control DB to one file and back.

A backup is a gzip'd tar of two members: ``manifest.json`` (what it is: engine, schema version,
appliance version, when, the payload's sha256) and the payload, either a self-contained SQLite
file made with SQLite's online backup (consistent while the appliance writes: never a copy of a
live file and its WAL) or a ``pg_dump`` custom-format archive. It is written 0600 (it holds token
hashes and instance password hashes) and appears under its name only once complete.

A restore checks everything before it changes anything: the manifest, the payload's checksum,
the engine and the schema version (never newer than this release's). SQLite: it holds the data
dir's ``up.lock`` (so no `up` runs, or starts, meanwhile), renames the verified file over the
Control DB, and keeps the previous one beside it. PostgreSQL: one transaction replaces every
table. It does not migrate: an older backup stays at its version until `migrate` (or `up`) runs,
so a backup taken before an upgrade can be restored for the older release too.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, BinaryIO

import peewee
from playhouse.db_url import parse as parse_db_url

from appliance import __version__
from appliance.connections import redact_url
from appliance.control.db import first_line
from appliance.control.migrations import latest_version
from appliance.control.models import ALL_MODELS, SchemaVersion
from appliance.errors import Conflict, ControlDbUnavailable, InvalidArgument, NotFound
from appliance.logs import redact
from appliance.service.processes import LOCK_FILE, DataDirLock
from appliance.settings import Settings
from appliance.shell import Runner, child_env

KIND = "sqlrs-control-db-backup"
FORMAT = 1  # of the file itself: raised only when a reader of today could not read it
MANIFEST = "manifest.json"
PAYLOADS = {"sqlite": "control.db", "postgresql": "control.dump"}
_MANIFEST_MAX_BYTES = 64 * 1024
_CHUNK = 1024 * 1024


class BackupInvalid(InvalidArgument):
    """The file is not a Control DB backup this release can restore here (unreadable, another
    format or engine); nothing was changed."""

    code = "backup_invalid"


class BackupChecksumMismatch(BackupInvalid):
    """The payload is not the one the manifest describes: damaged or altered."""

    code = "backup_checksum_mismatch"


class BackupSchemaTooNew(BackupInvalid):
    """The backup was taken by a newer release: this one would not understand its schema."""

    code = "backup_schema_too_new"


class ApplianceRunning(Conflict):
    """An appliance serves the data dir: its Control DB may not be replaced under it."""

    code = "appliance_running"


@dataclass(frozen=True)
class Manifest:
    engine: str
    schema_version: int
    appliance_version: str
    created_at: str
    payload: str
    payload_sha256: str
    payload_bytes: int
    kind: str = KIND
    format: int = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            manifest = cls(**json.loads(data))
        except (ValueError, TypeError) as exc:
            raise BackupInvalid(f"the backup's manifest is unreadable: {exc}") from None
        if not (isinstance(manifest.schema_version, int) and isinstance(manifest.payload_sha256, str)):
            raise BackupInvalid("the backup's manifest is unreadable: a field has the wrong type")
        if manifest.kind != KIND or manifest.format != FORMAT or PAYLOADS.get(manifest.engine) != manifest.payload:
            raise BackupInvalid(f"not a Control DB backup this release reads (kind {manifest.kind!r}, "
                                f"format {manifest.format!r}, engine {manifest.engine!r})")
        return manifest

    def summary(self) -> str:
        return (f"{self.engine} Control DB, schema version {self.schema_version}, taken {self.created_at} "
                f"by sqlrs appliance {self.appliance_version}, {self.payload_bytes} bytes")


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    previous: Path | None  # the replaced SQLite file, kept beside the Control DB

    def summary(self) -> str:
        lines = [f"restored {self.manifest.summary()}"]
        if self.previous is not None:
            lines.append(f"the previous Control DB is kept as {self.previous}")
        if self.manifest.schema_version < latest_version():
            lines.append(f"this release's schema is version {latest_version()}: run `sqlrs-appliance migrate` "
                         "(or `up`, which migrates first) before serving")
        return "\n".join(lines)


def engine_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:///") else "postgresql"


def sqlite_path(url: str) -> Path:
    return Path(url[len("sqlite:///"):])


# -- backup ----------------------------------------------------------------------------------
def backup(settings: Settings, dest: Path, *, runner: Runner | None = None) -> Manifest:
    """Write a backup of the Control DB to ``dest``; safe while the appliance runs."""
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise InvalidArgument(f"cannot write the backup: {dest.parent} is not a directory")
    url, engine = settings.control_db_url, engine_of(settings.control_db_url)
    with _staging(dest.parent) as staging:
        payload = staging / PAYLOADS[engine]
        if engine == "sqlite":
            _sqlite_snapshot(sqlite_path(url), payload)
            version = _schema_version(peewee.SqliteDatabase(str(payload)), "the snapshot")
        else:
            version = _schema_version(peewee.PostgresqlDatabase(**parse_db_url(url)), redact_url(url))
            _pg_dump(settings, payload, runner or Runner())
        manifest = Manifest(engine=engine, schema_version=version, appliance_version=__version__,
                            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                            payload=payload.name, payload_sha256=_sha256(payload),
                            payload_bytes=payload.stat().st_size)
        _write_archive(staging / "archive", manifest, payload)
        os.replace(staging / "archive", dest)  # whole, or not there at all
        _fsync_dir(dest.parent)
    return manifest


def _sqlite_snapshot(db: Path, payload: Path) -> None:
    """SQLite's online backup: one read transaction, so a consistent copy of the database and
    its WAL while the API and workers keep writing (a file copy could tear a page or miss the WAL)."""
    if not db.is_file():
        raise NotFound(f"no SQLite Control DB at {db}")
    source = sqlite3.connect(_uri(db, "rw"), uri=True, timeout=30)  # never creates one
    try:
        target = sqlite3.connect(payload)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
    finally:
        source.close()
    payload.chmod(0o600)


def _pg_dump(settings: Settings, payload: Path, runner: Runner) -> None:
    conninfo, env = _libpq(settings)
    runner([_pg_tool(settings, "pg_dump"), "--format=custom", "--file", str(payload), "--dbname", conninfo],
           env=env)


def _write_archive(path: Path, manifest: Manifest, payload: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            _add(tar, MANIFEST, io.BytesIO(manifest.to_json()), len(manifest.to_json()))
            with payload.open("rb") as data:
                _add(tar, payload.name, data, manifest.payload_bytes)
        raw.flush()
        os.fsync(raw.fileno())


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(dt.datetime.now(dt.UTC).timestamp())
    tar.addfile(info, data)


# -- restore ---------------------------------------------------------------------------------
def restore(settings: Settings, source: Path, *, confirmed: bool = False, runner: Runner | None = None) -> Restored:
    """Replace the Control DB with the backup in ``source``, or change nothing and say why."""
    if engine_of(settings.control_db_url) == "sqlite":
        return _restore_sqlite(settings, source)
    if not confirmed:
        raise InvalidArgument("a PostgreSQL Control DB has no lock that shows whether an API or worker still "
                              "uses it: stop every one of them on every host, then pass --yes")
    return _restore_postgres(settings, source, runner or Runner())


def _restore_sqlite(settings: Settings, source: Path) -> Restored:
    db = sqlite_path(settings.control_db_url)
    db.parent.mkdir(parents=True, exist_ok=True)  # a host being rebuilt has no data dir yet
    with _staging(db.parent) as staging:
        manifest, payload = read_backup(source, staging, "sqlite")
        _check_sqlite_payload(payload, manifest)
        with _data_dir_held(settings.data_dir):
            return Restored(manifest, _replace_sqlite(db, payload))


def _restore_postgres(settings: Settings, source: Path, runner: Runner) -> Restored:
    with _staging(None) as staging:
        manifest, payload = read_backup(source, staging, "postgresql")
        with _data_dir_held(settings.data_dir):  # at least no `up` of this host starts meanwhile
            _pg_restore(settings, payload, runner)
        return Restored(manifest, None)


def read_backup(source: Path, staging: Path, engine: str) -> tuple[Manifest, Path]:
    """The manifest, once it describes a backup this release may restore here, and the payload
    unpacked into ``staging`` once its checksum matched."""
    try:
        with tarfile.open(source, "r:*") as tar:
            manifest = Manifest.from_json(_member(tar, MANIFEST, _MANIFEST_MAX_BYTES).read())
            _check_restorable(source, manifest, engine)  # before unpacking what would be refused
            payload = staging / manifest.payload
            digest = _unpack(_member(tar, manifest.payload, None), payload)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BackupInvalid(f"{source} is not a readable Control DB backup: {exc}") from None
    if digest != manifest.payload_sha256:
        raise BackupChecksumMismatch(f"{source}: its payload's sha256 is {digest}, the manifest says "
                                     f"{manifest.payload_sha256}: the file was damaged or altered; nothing was restored")
    return manifest, payload


def _check_restorable(source: Path, manifest: Manifest, engine: str) -> None:
    if manifest.engine != engine:
        raise BackupInvalid(f"{source} holds a {manifest.engine} Control DB and this one is {engine}: "
                            "a backup is restored onto the engine it was taken from; nothing was restored")
    if manifest.schema_version > latest_version():
        raise BackupSchemaTooNew(f"{source} has schema version {manifest.schema_version}, newer than this release's "
                                 f"{latest_version()} (taken by sqlrs appliance {manifest.appliance_version}): "
                                 "restore it with that release or a later one; nothing was restored")


def _member(tar: tarfile.TarFile, name: str, limit: int | None) -> IO[bytes]:
    """A regular file of the archive, by name (never extracted by its own path)."""
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BackupInvalid(f"the backup has no {name}") from None
    if not info.isfile() or (limit is not None and info.size > limit):
        raise BackupInvalid(f"the backup's {name} is not a regular file of a sensible size")
    data = tar.extractfile(info)
    if data is None:  # pragma: no cover - isfile() members always have data
        raise BackupInvalid(f"the backup's {name} is unreadable")
    return data


def _unpack(data: IO[bytes], path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _check_sqlite_payload(payload: Path, manifest: Manifest) -> None:
    """The checksum proves the file is the one backed up; this proves it is a database at the
    version the manifest claims (a hand-edited manifest cannot slip a newer schema past us)."""
    try:
        with contextlib.closing(sqlite3.connect(_uri(payload, "ro"), uri=True)) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupInvalid(f"the backup's payload is not a SQLite database: {exc}") from None
    if check != "ok":
        raise BackupInvalid(f"the backup's SQLite database fails its check: {check}")
    found = _schema_version(peewee.SqliteDatabase(str(payload)), "the backup")
    if found != manifest.schema_version:
        raise BackupInvalid(f"the backup's database is at schema version {found}, its manifest says "
                            f"{manifest.schema_version}")


def _replace_sqlite(db: Path, payload: Path) -> Path | None:
    """Rename the verified payload over ``db``: the name holds the old database or the new one,
    never a half-written file. The old one (with its WAL, which may hold its latest commits) is
    kept as ``<db>.before-restore-<time>``; a WAL left beside the new file would be replayed
    into it."""
    if db.exists():
        owner = db.stat()
        with contextlib.suppress(PermissionError):  # as root: keep the appliance's owner
            os.chown(payload, owner.st_uid, owner.st_gid)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = db.with_name(f"{db.name}.before-restore-{stamp}")
    kept = False
    for suffix in ("-wal", "-shm"):
        companion = db.with_name(db.name + suffix)
        if companion.exists():
            os.replace(companion, aside.with_name(aside.name + suffix))
            kept = True
    if db.exists():
        os.link(db, aside)
        kept = True
    os.replace(payload, db)
    _fsync_dir(db.parent)
    return aside if kept else None


def _pg_restore(settings: Settings, payload: Path, runner: Runner) -> None:
    """pg_restore turns the archive into SQL and psql runs it, after dropping every table this
    release knows, in ONE transaction: the Control DB is the backup's or stays as it was, and no
    table the backup does not have (one a later migration made) survives with stale rows."""
    conninfo, env = _libpq(settings)
    tables = ", ".join(f'"{model._meta.table_name}"' for model in ALL_MODELS)
    psql = [_pg_tool(settings, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
            "--dbname", conninfo, "-c", f"DROP TABLE IF EXISTS {tables} CASCADE", "-f", "-"]
    sql = [_pg_tool(settings, "pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
           "--exit-on-error", "--file", "-", str(payload)]

    def into_psql(stream: BinaryIO) -> None:
        runner.pipe_into(psql, stream, env=env)
    runner.pipe_from(sql, into_psql, env=child_env())  # pg_restore reads a file: it needs no connection


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """A conninfo string for argv, and the environment that carries the password: argv is
    readable by every user of the host (``ps``) and lands in error messages."""
    params = parse_db_url(settings.control_db_url)
    password = params.pop("password", None)
    names = {"database": "dbname"}
    conninfo = " ".join(f"{names.get(key, key)}={_quoted(value)}" for key, value in params.items()
                        if value is not None)
    env = child_env(PGPASSWORD=None if password is None else str(password),
                    PGAPPNAME="sqlrs-appliance", PGCONNECT_TIMEOUT="10")
    return conninfo, env


def _quoted(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pg_tool(settings: Settings, name: str) -> str:
    """The configured PostgreSQL binaries' tool, else the one on PATH."""
    return str(settings.pg_bin_dir / name) if settings.pg_bin_dir else name


# -- shared ----------------------------------------------------------------------------------
def _schema_version(db: peewee.Database, what: str) -> int:
    table = SchemaVersion._meta.table_name
    try:
        db.connect()
        if not db.table_exists(table):
            return 0
        return int(db.execute_sql(f"SELECT MAX(version) FROM {table}").fetchone()[0] or 0)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        raise ControlDbUnavailable(f"cannot read the schema version of {what}: {redact(first_line(exc))}") from None
    finally:
        if not db.is_closed():
            db.close()


@contextlib.contextmanager
def _data_dir_held(data_dir: Path) -> Iterator[None]:
    """Hold ``up.lock`` while the Control DB is replaced: an `up` serving the data dir refuses the
    restore, and one started meanwhile refuses to start. Without a data dir (a PostgreSQL Control
    DB on a host that has none) there is nothing to hold."""
    if not data_dir.is_dir():
        yield
        return
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except Conflict:
        holder = (data_dir / LOCK_FILE).read_text(errors="replace").strip() or "unknown"  # the holder's pid
        raise ApplianceRunning(f"another `sqlrs-appliance up` (pid {holder}) is serving {data_dir}: stop it before "
                               "restoring its Control DB; nothing was changed") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _staging(beside: Path | None) -> Iterator[Path]:
    """A private (0700) directory for the payload, on the same filesystem as what it replaces
    (so a rename finishes the job), removed with whatever is left in it."""
    with tempfile.TemporaryDirectory(prefix=".sqlrs-backup-", dir=beside) as name:
        yield Path(name)


def _uri(path: Path, mode: str) -> str:
    """A SQLite URI for ``path`` (percent-encoded: a ``?`` or ``#`` in a directory name stays a name)."""
    return f"{path.absolute().as_uri()}?mode={mode}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
