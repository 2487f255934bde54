"""`sqlrs-appliance doctor`: what this host offers the appliance, what it chose, and why.

Every check runs even when an earlier one fails, so one run shows every problem; the exit
code is non-zero when any check failed. It prepares the store as `up` would (so it may mount
the btrfs image) but starts no service and changes no row.
"""
from __future__ import annotations

import shutil
import stat
from dataclasses import asdict, dataclass
from typing import Callable

from redis.connection import parse_url

from ..connections import private_redis_dir, redact_url, redis_client, redis_password_file
from ..settings import Settings
from ..shell import Runner


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _storage(settings: Settings, runner: Runner) -> str:
    from ..storage.select import choose_store
    choice = choose_store(settings, runner)
    return " ".join([choice.reason + "."] + choice.warnings)


def _postgres(settings: Settings, runner: Runner) -> str:
    from ..runtime.select import open_runtime
    runtime = open_runtime(settings, runner)
    resolved = runtime.resolve_image("postgres")
    return (f"{runtime.name} runtime: postgres resolves to {resolved}; instances run as their org's OS user "
            f"(isolation os) or as {runtime.os_user}")


def _isolation(settings: Settings, runner: Runner) -> str:
    from ..isolation.level import choose_isolation
    from ..shell import unprivileged
    isolation = choose_isolation(settings, runner, unprivileged(settings.instance_os_user or "postgres"))
    return f"{isolation.level}: {isolation.reason}"


def _ports(settings: Settings, runner: Runner) -> str:
    from ..runtime.ports import port_is_bindable
    free = sum(port_is_bindable(settings.instance_host, p) for p in range(settings.port_min, settings.port_max + 1))
    if free == 0:
        raise RuntimeError(f"no free port in {settings.port_min}-{settings.port_max} on {settings.instance_host}")
    return f"{free} of {settings.port_max - settings.port_min + 1} ports free on {settings.instance_host}"


def _control_db(settings: Settings, runner: Runner) -> str:
    from ..control.db import close_database, open_database
    from ..control.migrations import current_version, latest_version
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
    from ..artifacts.ownership import owner
    from ..artifacts.store import open_object_store
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
    """Read only: a diagnosis creates no id (`up` does)."""
    from ..control.db import close_database, open_database
    from ..control.models import Installation
    db = open_database(settings.control_db_url)
    try:
        if not db.table_exists(Installation._meta.table_name):
            return None
        row = Installation.get_or_none(Installation.singleton == 1)
        return row.installation_id if row else None
    finally:
        close_database(db)


CHECKS: list[tuple[str, Callable[[Settings, Runner], str]]] = [
    ("storage", _storage), ("postgres", _postgres), ("isolation", _isolation), ("ports", _ports), ("control_db", _control_db),
    ("redis", _redis), ("object_store", _objects),
]


def run_checks(settings: Settings, runner: Runner | None = None) -> list[Check]:
    runner = runner or Runner()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
