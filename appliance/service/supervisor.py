"""`sqlrs-appliance up`: the embedded default in one foreground process tree.

It takes the data dir's lock (one `up` per data dir), stops what an earlier `up` of it left
running, prepares it (migrations, admin token, store), starts a private redis-server unless one
is configured and N worker processes, keeps them alive (restarting any that die, with backoff,
as systemd would), runs the reconciler loop in a thread, and serves the API until SIGTERM.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hypercorn.asyncio import serve
from hypercorn.config import Config
from pydantic import SecretStr

from appliance.api.app import create_app
from appliance.api.auth import ensure_admin_token
from appliance.api.wire import install_json_protocol_errors
from appliance.certificates import fingerprint
from appliance.connections import redact_url
from appliance.context import AppContext, build_context
from appliance.control.db import UNAVAILABLE as CONTROL_DB_UNAVAILABLE
from appliance.control.db import first_line
from appliance.control.migrations import migrate
from appliance.control.models import utcnow
from appliance.errors import InternalError
from appliance.isolation.traversal import require_traversable
from appliance.orchestrator import hosts
from appliance.orchestrator.reconciler import reconcile
from appliance.service.log_files import RotatingLog, pump
from appliance.service.processes import (
    CHILDREN_FILE,
    ChildRecord,
    DataDirLock,
    die_with_parent,
    record_children,
    stop_leftovers,
    stop_processes,
)
from appliance.service.resources import host_resources
from appliance.service.tls import is_loopback, server_files
from appliance.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from appliance.service.redis_server import PrivateRedis

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10.0  # one deadline for every worker at a graceful stop (RQ's warm shutdown)
REDIS_STOP_SECONDS = 5.0


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
    if ctx.isolation is not None:  # always, but for contexts tests build by hand
        require_traversable(settings, ctx.isolation, ctx.store.root)
    for problem in host_resources(ctx.store.root).problems:  # what would fail initdb or servers later
        log.warning("this host will fail Postgres: %s", problem)
    migrate(ctx.db)
    claim_object_store(ctx)
    hosts.register(ctx)
    ensure_admin_token(settings.admin_token_file, settings.default_org)
    ctx.store.root.chmod(0o711)
    ctx.store.activate()  # e.g. LVM volumes are neither active nor mounted after a reboot
    ctx.store.sweep_temporaries()  # only safe before any worker commits
    return ctx


def claim_object_store(ctx: AppContext) -> None:
    """The object store is this installation's, or it does not start (``object_store_not_ours``)."""
    from appliance.objectstore.ownership import claim
    claim(ctx.objects, ctx.objects.installation_id, redact_url(ctx.settings.objects_url))


@dataclass
class Backoff:
    """How long a child that died waits before it starts again: ``first``, doubling while it keeps
    dying, at most ``cap``; back to ``first`` once it had run for ``healthy_after`` seconds."""

    first: float
    cap: float
    healthy_after: float = 30.0
    _next: float = 0.0

    def delay(self, ran_for: float) -> float:
        if not self._next or ran_for >= self.healthy_after:
            self._next = self.first
        delay, self._next = self._next, min(self.cap, self._next * 2)
        return delay


class Supervised:
    """One child of `up`: how to start it, its process, and when it may start again."""

    def __init__(self, role: str, start: Callable[[], subprocess.Popen], backoff: Backoff):
        self.role, self._start, self.backoff = role, start, backoff
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.due: float | None = None  # when to start it again, once it has exited
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.due, self.started_at = None, time.monotonic()
        self.process = self._start()

    def schedule_restart(self) -> None:
        """The process ended: say so, and when it starts again."""
        ran_for = time.monotonic() - self.started_at
        wait = self.backoff.delay(ran_for)
        self.due = time.monotonic() + wait
        code = self.process.returncode if self.process is not None else "no process"
        log.warning("%s (pid %s) exited with %s after %.1f s; starting it again in %.1f s", self.role,
                    self.process.pid if self.process is not None else "-", code, ran_for, wait)


class Supervisor:
    """Keeps the private Redis (if any) and the workers running, as systemd would: a child that dies
    starts again after its backoff (workers only once Redis is up). Every child dies with `up`
    (``PR_SET_PDEATHSIG``) and is recorded in ``up.children`` for the next `up` to find."""

    POLL_SECONDS = 0.25

    def __init__(self, data_dir: Path, redis: Supervised | None, workers: list[Supervised]):
        self.data_dir, self.redis, self.workers = data_dir, redis, workers
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def children(self) -> list[Supervised]:
        return ([self.redis] if self.redis else []) + self.workers

    def start(self) -> None:
        """Start every child (Redis first: it answers before any worker starts), then watch them
        from a thread that outlives them: a child's death signal is tied to its parent thread."""
        for child in self.children:
            child.start()
            self._record()
        self._thread = threading.Thread(target=self._run, name="supervisor")
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self._stop_children()

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.POLL_SECONDS):
                self._tend()
        finally:
            self._stop_children()

    def _tend(self) -> None:
        for child in self.children:
            if child.due is None and not child.running:
                child.schedule_restart()
            if child.due is not None and time.monotonic() >= child.due and self._may_start(child):
                self._restart(child)

    def _may_start(self, child: Supervised) -> bool:
        return child is self.redis or self.redis is None or self.redis.running

    def _restart(self, child: Supervised) -> None:
        child.restarts += 1
        try:
            child.start()
        except Exception as exc:  # e.g. Redis did not answer in time: the next try waits longer
            log.warning("%s could not start again: %s", child.role, exc)
            child.started_at = time.monotonic()
            child.schedule_restart()
            return
        log.info("%s started again (pid %s, restart %d)", child.role, child.pid, child.restarts)
        self._record()

    def _record(self) -> None:
        records = [ChildRecord.of(c.role, c.pid) for c in self.children if c.running and c.pid is not None]
        record_children(self.data_dir, [r for r in records if r is not None])

    def _stop_children(self) -> None:
        """Workers first, all at once with one deadline (Redis serves them until they are gone),
        then Redis."""
        stop_processes([w.process for w in self.workers if w.process], STOP_GRACE_SECONDS)
        if self.redis and self.redis.process:
            stop_processes([self.redis.process], REDIS_STOP_SECONDS)
        (self.data_dir / CHILDREN_FILE).unlink(missing_ok=True)


def worker_child(index: int, env: dict[str, str], log: RotatingLog) -> Supervised:
    def spawn() -> subprocess.Popen:
        """A long-lived child to supervise, not a command to run: hence Popen, not the Runner."""
        log.path.parent.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "worker"],
                                       env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=write_end,
                                       stderr=subprocess.STDOUT, preexec_fn=die_with_parent())
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the worker holds it now: the pipe ends when the worker does
        pump(read_end, log, f"worker-{index}")
        return process
    return Supervised(f"worker-{index}", spawn, Backoff(first=1.0, cap=60.0))


def redis_child(redis: PrivateRedis) -> Supervised:
    def spawn() -> subprocess.Popen:
        redis.start()  # on the same socket, with the same password: clients reconnect by themselves
        if redis.process is None:
            raise InternalError("the private redis-server did not start")
        return redis.process
    return Supervised("redis", spawn, Backoff(first=0.25, cap=30.0))


def supervisor_for(settings: Settings) -> Supervisor:
    from appliance.service.redis_server import PrivateRedis

    redis = None if settings.redis_url else redis_child(PrivateRedis.of(settings.data_dir))
    env = settings_env(settings)
    logs = settings.data_dir / "logs"
    workers = [worker_child(i, env, RotatingLog(logs / f"worker-{i}.log", settings.log_file_max_bytes,
                                                settings.log_file_backups)) for i in range(settings.workers)]
    return Supervisor(settings.data_dir, redis, workers)


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
    prepare_data_dir(settings)
    lock = DataDirLock(settings.data_dir)
    lock.acquire()  # one `up` per data dir
    try:
        stop_leftovers(settings.data_dir, grace=STOP_GRACE_SECONDS)  # before anything of ours starts
        ctx = bootstrap(settings)
        supervisor = supervisor_for(settings)
        stop = threading.Event()
        try:
            supervisor.start()
            ctx.__dict__.pop("redis", None)  # a client of the Redis just started
            threading.Thread(target=reconcile_forever, args=(ctx, stop), daemon=True,
                             name="reconciler").start()
            asyncio.run(_serve(ctx))
        finally:
            stop.set()
            supervisor.stop()
    finally:
        lock.release()


def _require_shared_services(settings: Settings, command: str):
    """What a process of a split deployment needs before it starts: a shared Redis and a Control
    DB already migrated (by `sqlrs-appliance migrate`, the migrations unit or job)."""
    from appliance.control.migrations import current_version, latest_version
    from appliance.errors import InvalidArgument

    if not settings.redis_url:
        raise InvalidArgument(f"`sqlrs-appliance {command}` needs SQLRS_REDIS_URL (a Redis the workers share); "
                              "`sqlrs-appliance up` starts a private one instead")
    ctx = build_context(settings, wait_for_control_db=command == "reconciler")
    if (version := current_version(ctx.db)) != latest_version():
        raise InvalidArgument(f"the Control DB schema is at version {version}, this release needs "
                              f"{latest_version()}: run `sqlrs-appliance migrate` first")
    claim_object_store(ctx)
    return ctx


def serve_api(settings: Settings) -> None:
    """The API only, for sites that run the reconciler and the workers as processes of their own
    (systemd units, Nomad service jobs): Redis and the Control DB are shared, and already migrated."""
    ctx = _require_shared_services(settings, "api")
    asyncio.run(_serve(ctx))


def run_reconciler(settings: Settings) -> None:
    """This host's reconciler, until SIGTERM: it registers the host and keeps its heartbeat,
    brings the store up after a reboot, and repairs what crashes left (see reconcile_forever)."""
    ctx = _require_shared_services(settings, "reconciler")
    hosts.register(ctx)
    ctx.store.activate()  # e.g. LVM volumes are neither active nor mounted after a reboot
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("reconciler of host %s: a pass every %.1f s", ctx.host, settings.reconcile_interval_seconds)
    reconcile_forever(ctx, stop)


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
    scheme = "http"
    if (tls := server_files(ctx.settings)) is not None:
        config.certfile, config.keyfile, scheme = str(tls.cert), str(tls.key), "https"
        if tls.ca is not None:
            log.info("TLS: clients trust %s (sha256 %s): sqlrs --ca-cert, SQLRS_CA_CERT", tls.ca, fingerprint(tls.ca))
    elif not is_loopback(ctx.settings.listen):
        log.warning("the API listens on %s without TLS: tokens cross the network in the clear; set "
                    "tls_cert_file/tls_key_file or tls_self_signed", ctx.settings.listen)
    log.info("sqlrs appliance listening on %s://%s", scheme, ctx.settings.listen)
    await serve(create_app(ctx), config, shutdown_trigger=shutdown.wait)
