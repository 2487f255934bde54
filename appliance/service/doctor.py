"""`sqlrs-appliance doctor`: what this host offers the appliance, what it chose, and why.

Every check runs even when an earlier one fails, so one run shows every problem; the exit
code is non-zero when any check failed. A diagnosis changes nothing: it starts no service,
changes no row and creates no Control DB. To try the store as `up` would, it may have to make
and loop-mount the btrfs image (and the directories above it); it then unmounts and removes
what it made, and says so.
"""
from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from redis.connection import parse_url

from appliance.connections import private_redis_dir, redact_url, redis_client, redis_password_file
from appliance.settings import Settings
from appliance.shell import Runner


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _data_dir(settings: Settings, runner: Runner) -> str:
    from appliance.isolation.traversal import cluster_users, roots_of, untraversable
    from appliance.storage.select import store_root
    users = cluster_users(settings, _choose_isolation(settings, runner))
    roots = roots_of(settings, store_root(settings, runner))
    if problems := untraversable(roots, users):
        raise RuntimeError("; ".join(problems))
    who = " and ".join(user.name for user in users) or "the appliance's own user"
    return f"{who} can traverse to {' and '.join(map(str, roots))}"


def _storage(settings: Settings, runner: Runner) -> str:
    from appliance.storage.image import is_btrfs_mount
    from appliance.storage.select import choose_store, image_path
    image = image_path(settings)
    made = _missing([*_upward(settings.data_dir), image, *_upward(settings.store_path)])
    was_mounted = is_btrfs_mount(settings.store_path)
    try:
        choice = choose_store(settings, runner)
    finally:
        undone = _undo(settings, runner, made, was_mounted)
    return " ".join([choice.reason + "."] + choice.warnings + undone)


def _upward(path: Path) -> list[Path]:
    """``path`` and the directories above it, deepest first."""
    return [path, *path.parents]


def _missing(paths: list[Path]) -> list[Path]:
    """Those of ``paths`` that do not exist, deepest first (the order they are removed in)."""
    return sorted({p for p in paths if not os.path.lexists(p)}, key=lambda p: len(p.parts), reverse=True)


def _undo(settings: Settings, runner: Runner, made: list[Path], was_mounted: bool) -> list[str]:
    """Unmount the store if the diagnosis mounted it, remove what it made; sentences saying so."""
    from appliance.storage.image import is_btrfs_mount, unmount
    said = []
    if not was_mounted and is_btrfs_mount(settings.store_path):
        unmount(settings.store_path, runner)
        said.append(f"Doctor mounted the btrfs image on {settings.store_path} to try it, and unmounted it.")
    removed, left = [], []
    for path in made:
        if not os.path.lexists(path):
            continue
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(str(path))
        except OSError as exc:
            left.append(f"{path} ({exc.strerror})")
    if removed:
        said.append(f"It made and removed again: {', '.join(reversed(removed))}; `up` makes them.")
    if left:
        said.append(f"It made and could not remove: {', '.join(left)}.")
    return said


def _resources(settings: Settings, runner: Runner) -> str:
    from appliance.service.resources import host_resources
    from appliance.storage.select import store_root
    found = host_resources(store_root(settings, runner))
    if found.problems:
        raise RuntimeError("; ".join(found.problems) + f" (the host has {', '.join(found.facts)})")
    return "; ".join(found.facts) + "".join(f". {note}" for note in found.notes)


def _postgres(settings: Settings, runner: Runner) -> str:
    from appliance.runtime.select import open_runtime
    runtime = open_runtime(settings, runner)
    resolved = runtime.resolve_image("postgres")
    return (f"{runtime.name} runtime: postgres resolves to {resolved}; instances run as their org's OS user "
            f"(isolation os) or as {runtime.os_user}")


def _choose_isolation(settings: Settings, runner: Runner):
    from appliance.isolation.level import choose_isolation
    from appliance.shell import unprivileged
    return choose_isolation(settings, runner, unprivileged(settings.instance_os_user or "postgres"))


def _isolation(settings: Settings, runner: Runner) -> str:
    isolation = _choose_isolation(settings, runner)
    return f"{isolation.level}: {isolation.reason}"


def _ports(settings: Settings, runner: Runner) -> str:
    from appliance.runtime.ports import port_is_bindable
    free = sum(port_is_bindable(settings.instance_host, p) for p in range(settings.port_min, settings.port_max + 1))
    if free == 0:
        raise RuntimeError(f"no free port in {settings.port_min}-{settings.port_max} on {settings.instance_host}")
    return f"{free} of {settings.port_max - settings.port_min + 1} ports free on {settings.instance_host}"


def _sqlite_file_missing(settings: Settings) -> bool:
    """An embedded Control DB not made yet: opening it would create it, which a diagnosis must not."""
    return settings.control_db_url.startswith("sqlite:///") and not os.path.exists(
        settings.control_db_url.removeprefix("sqlite:///"))


def _control_db(settings: Settings, runner: Runner) -> str:
    from appliance.control.db import close_database, open_database
    from appliance.control.migrations import current_version, latest_version
    if _sqlite_file_missing(settings):
        return (f"SQLite, not created yet: `up` or `sqlrs-appliance migrate` makes it at "
                f"{settings.control_db_url.removeprefix('sqlite:///')}")
    db = open_database(settings.control_db_url)
    try:
        version = current_version(db)
    finally:
        close_database(db)
    engine = (f"PostgreSQL ({redact_url(settings.control_db_url)})" if settings.control_db_url.startswith("postgres")
              else "SQLite")
    state = "up to date" if version == latest_version() else "`up` or `sqlrs-appliance migrate` will migrate it"
    return f"{engine}, schema version {version} of {latest_version()}: {state}"


def _redis(settings: Settings, runner: Runner) -> str:
    if not settings.redis_url:
        if shutil.which("redis-server") is None:
            raise RuntimeError("SQLRS_REDIS_URL is not set and redis-server is not installed")
        password = redis_password_file(settings.data_dir)
        if password.exists() and stat.S_IMODE(password.stat().st_mode) & 0o077:
            raise RuntimeError(f"{password} is readable by others (`up` replaces it with a new password)")
        return (f"private redis-server (started by `up`): no TCP port, a unix socket in "
                f"{private_redis_dir(settings.data_dir)} (0700), its password in {password} (0600)")
    redis_client(settings, socket_connect_timeout=3).ping()
    if settings.redis_url.startswith("unix://") and "password" not in parse_url(settings.redis_url):
        return (f"configured Redis answers ({redact_url(settings.redis_url)}); no password: only the socket's "
                "permissions keep tenants' code away from the queues")
    return f"configured Redis answers ({redact_url(settings.redis_url)})"


def _objects(settings: Settings, runner: Runner) -> str:
    from appliance.objectstore.ownership import owner
    from appliance.objectstore.store import open_object_store
    objects = open_object_store(settings)
    list(objects.list(f"{settings.default_org}/"))
    scheme = settings.objects_url.split(":", 1)[0]
    answers = f"{'S3/MinIO' if scheme == 's3' else 'local directory'} object store answers"
    found, ours = owner(objects), _installation_id(settings)
    if found is None:
        return f"{answers}; no installation owns it yet (`up` claims it)"
    if ours is None or found != ours:
        raise RuntimeError(f"object_store_not_ours: {redact_url(settings.objects_url)} belongs to installation "
                           f"{found}, not to this one ({ours or 'no id yet: its Control DB is new'}); `up` refuses "
                           "to start on it: give each installation its own bucket or prefix")
    return f"{answers}; owned by this installation ({ours})"


def _installation_id(settings: Settings) -> str | None:
    """Read only: a diagnosis creates no id (`up` does), nor a Control DB."""
    from appliance.control.db import close_database, open_database
    from appliance.control.models import Installation
    if _sqlite_file_missing(settings):
        return None
    db = open_database(settings.control_db_url)
    try:
        if not db.table_exists(Installation._meta.table_name):
            return None
        row = Installation.get_or_none(Installation.singleton == 1)
        return row.installation_id if row else None
    finally:
        close_database(db)


CHECKS: list[tuple[str, Callable[[Settings, Runner], str]]] = [
    ("data_dir", _data_dir), ("storage", _storage), ("resources", _resources), ("postgres", _postgres),
    ("isolation", _isolation), ("ports", _ports), ("control_db", _control_db), ("redis", _redis),
    ("object_store", _objects),
]


def run_checks(settings: Settings, runner: Runner | None = None) -> list[Check]:
    runner = runner or Runner()
    results = []
    for name, check in CHECKS:
        try:
            results.append(Check(name, True, check(settings, runner)))
        except Exception as exc:  # a doctor reports every failure instead of stopping at the first
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            results.append(Check(name, False, message))
    return results


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(check) for check in checks]
