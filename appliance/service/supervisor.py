"""`sqlrs-appliance up`: the embedded default in one foreground process tree.

It prepares the data dir (migrations, admin token, store), starts a private redis-server
unless one is configured, keeps N worker processes alive (restarting any that die, as
systemd would), runs the reconciler loop in a thread, and serves the API until SIGTERM.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from hypercorn.asyncio import serve
from pydantic import SecretStr
from hypercorn.config import Config

from ..api.app import create_app
from ..api.wire import install_json_protocol_errors
from ..api.auth import ensure_admin_token
from ..context import AppContext, build_context
from ..connections import redact_url
from ..control.db import UNAVAILABLE as CONTROL_DB_UNAVAILABLE, first_line
from ..control.migrations import migrate
from ..control.models import utcnow
from ..isolation.traversal import require_traversable
from ..orchestrator import hosts
from ..orchestrator.reconciler import reconcile
from ..settings import Settings
from .resources import host_resources

log = logging.getLogger(__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """The effective settings as SQLRS_* variables, so children see exactly what we see."""
    env = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, (list, dict)):
            value = json.dumps(value, default=str)  # pydantic-settings reads complex values as JSON (paths as strings)
        if value is not None:
            env[f"SQLRS_{name.upper()}"] = str(value)
    return env


def prepare_data_dir(settings: Settings) -> None:
    """Secrets (control DB, token) stay private; org users may traverse to their own sources and
    socket dirs (each closed to other orgs) but list nothing."""
    for parent in reversed(settings.data_dir.parents):  # made here: reachable by the cluster users
        if not parent.exists():
            parent.mkdir(exist_ok=True)
            parent.chmod(0o755)
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o711)
    for shared in ("sources", "run"):
        (settings.data_dir / shared).mkdir(exist_ok=True)
        (settings.data_dir / shared).chmod(0o711)


def bootstrap(settings: Settings) -> AppContext:
    prepare_data_dir(settings)
    ctx = build_context(settings)
    require_traversable(settings, ctx.isolation, ctx.store.root)
    for problem in host_resources(ctx.store.root).problems:  # what would fail initdb or servers later
        log.warning("this host will fail Postgres: %s", problem)
    migrate(ctx.db)
    claim_object_store(ctx)
    hosts.register(ctx)
    ensure_admin_token(settings.admin_token_file, settings.default_org)
    ctx.store.root.chmod(0o711)
    ctx.store.driver.activate(ctx.store.root)  # e.g. LVM volumes are neither active nor mounted after a reboot
    ctx.store.sweep_temporaries()  # only safe before any worker commits
    return ctx


def claim_object_store(ctx: AppContext) -> None:
    """The object store is this installation's, or it does not start (``object_store_not_ours``)."""
    from ..artifacts.ownership import claim
    claim(ctx.objects, ctx.objects.installation_id, redact_url(ctx.settings.objects_url))


class WorkerPool:
    def __init__(self, count: int, env: dict[str, str], log_dir: Path):
        self.count, self.env, self.log_dir = count, env, log_dir
        self.processes: list[subprocess.Popen] = []
        self.stopping = threading.Event()

    def _spawn(self, index: int) -> subprocess.Popen:
        """A long-lived child to supervise, not a command to run: hence Popen, not the Runner."""
        with open(self.log_dir / f"worker-{index}.log", "ab") as log_file:
            return subprocess.Popen([sys.executable, "-m", "appliance.service.main", "worker"],
                                    env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes = [self._spawn(i) for i in range(self.count)]
        threading.Thread(target=self._watch, daemon=True, name="worker-watch").start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for i, proc in enumerate(self.processes):
                if proc.poll() is not None and not self.stopping.is_set():
                    log.warning("worker %d (pid %d) exited with %s; restarting", i, proc.pid, proc.returncode)
                    self.processes[i] = self._spawn(i)

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


def reconcile_forever(ctx: AppContext, stop: threading.Event) -> None:
    """One pass at start-up, so what a crash left behind is repaired before new work piles
    on, then one every ``reconcile_interval_seconds``."""
    reachable_since: dt.datetime | None = None  # the Control DB, as this loop last saw it
    while True:
        try:
            reachable_since = reachable_since or utcnow()
            report = reconcile(ctx, control_db_reachable_since=reachable_since)
            if any(vars(report).values()):
                log.info("reconciled: %s", report)
        except CONTROL_DB_UNAVAILABLE as exc:
            reachable_since = None
            log.warning("reconciler pass skipped: the Control DB is unavailable (%s)", first_line(exc))
        except Exception:
            log.exception("reconciler pass failed")
        if stop.wait(ctx.settings.reconcile_interval_seconds):
            return


def up(settings: Settings) -> None:
    from .redis_server import PrivateRedis

    ctx = bootstrap(settings)
    redis = None
    if not settings.redis_url:  # every process of this data dir finds it there (socket, password file)
        redis = PrivateRedis.of(settings.data_dir)
        redis.start()
        ctx.__dict__.pop("redis", None)
    pool = WorkerPool(settings.workers, settings_env(settings), settings.data_dir / "logs")
    stop = threading.Event()
    try:
        pool.start()
        threading.Thread(target=reconcile_forever, args=(ctx, stop), daemon=True,
                         name="reconciler").start()
        asyncio.run(_serve(ctx))
    finally:
        stop.set()
        pool.stop()
        if redis:
            redis.stop()


def serve_api(settings: Settings) -> None:
    """The API and the reconciler only, for sites that run workers separately (systemd units,
    Nomad service jobs): Redis and the Control DB are shared, and already migrated."""
    from ..control.migrations import current_version, latest_version
    from ..errors import InvalidArgument

    if not settings.redis_url:
        raise InvalidArgument("`sqlrs-appliance api` needs SQLRS_REDIS_URL (a Redis the workers share); "
                              "`sqlrs-appliance up` starts a private one instead")
    ctx = build_context(settings)
    if (version := current_version(ctx.db)) != latest_version():
        raise InvalidArgument(f"the Control DB schema is at version {version}, this release needs "
                              f"{latest_version()}: run `sqlrs-appliance migrate` first")
    claim_object_store(ctx)
    hosts.register(ctx)
    stop = threading.Event()
    threading.Thread(target=reconcile_forever, args=(ctx, stop), daemon=True, name="reconciler").start()
    try:
        asyncio.run(_serve(ctx))
    finally:
        stop.set()


async def _serve(ctx: AppContext) -> None:
    config = Config()
    config.bind = [ctx.settings.listen]
    config.graceful_timeout = 5
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # our handler and format, not hypercorn's own
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    install_json_protocol_errors()  # hypercorn's own 400/431 answers carry the error envelope too
    log.info("sqlrs appliance listening on http://%s", ctx.settings.listen)
    await serve(create_app(ctx), config, shutdown_trigger=shutdown.wait)
