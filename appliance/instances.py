"""Instances: a writable clone of a state with a running Postgres, a port and a password.

The password lives only in the Instance row and in the DSN returned to its owner; it is
set as a SCRAM verifier so Postgres never sees the plaintext either.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import secrets
import shutil
import time
from pathlib import Path

from appliance.certificates import INSTANCES_CA, authority, issue_server
from appliance.context import AppContext
from appliance.control.db import write_transaction
from appliance.control.models import Instance, Volume, utcnow
from appliance.control.quotas import instance_limits
from appliance.faults import failpoint
from appliance.runtime.base import SUPERUSER, ServerTls
from appliance.runtime.cluster import SERVER_LOG
from appliance.runtime.ports import PortPool
from appliance.runtime.tenant_files import read_tail
from appliance.shell import cancellable

log = logging.getLogger(__name__)
POOLED_LIFETIME = 10 * 365 * 86400  # pooled instances never expire; trimming the pool removes them
DELETE_REQUESTED = "delete_requested"  # deleted through another host; its own host tears it down
SERVER_LOG_TAIL_BYTES = 1024 * 1024


def new_id() -> str:
    return secrets.token_hex(16)


def dsn(instance: Instance) -> str:
    return (f"postgres://{SUPERUSER}:{instance.password}@{instance.host}:{instance.port}"
            f"/postgres?sslmode={'require' if instance.tls else 'disable'}")


def server_tls(ctx: AppContext, instance: Instance) -> ServerTls | None:
    """A fresh certificate of this host's instances CA for an instance that serves TLS, or None.
    One per start (no instance holds the key of another), valid no longer than an instance may
    live; the API's CA never signs one (the instance's owner can read its key)."""
    if not instance.tls:
        return None
    days = ctx.settings.instance_max_ttl_seconds / 86400 + 1
    issued = issue_server(authority(ctx.settings.data_dir / "tls", INSTANCES_CA), [instance.host], days=days)
    return ServerTls(issued.cert_pem, issued.key_pem)


def volume_path(ctx: AppContext, org: str, volume_id: str) -> Path:
    return ctx.store.volume_path(org, volume_id)


def instance_run_dir(ctx: AppContext, volume_id: str) -> Path:
    return ctx.run_dir / volume_id


def create_instance(ctx: AppContext, *, org: str, state_id: str, image_id: str, job_id: str | None,
                    ttl_seconds: int, name: str | None, reuse_volume_id: str | None = None,
                    pooled: bool = False, state_org: str | None = None) -> Instance:
    """Start an instance of ``state_id``; reuses a stopped build clone of it when one is handed in.

    A ``pooled`` instance runs but has no password yet (its role cannot log in over TCP) and
    belongs to no job: it waits in the warm pool until a prepare binds it. ``state_org`` names
    the org whose copy is cloned, when another org shared the state."""
    state_org = state_org or org
    instance_id = new_id()
    volume_id = reuse_volume_id or new_id()
    with ctx.redis.lock(f"sqlrs:lock:ports:{ctx.host}", timeout=30, blocking_timeout=60):
        taken = {row.port for row in Instance.select(Instance.port)
                 .where(Instance.port.is_null(False) & (Instance.host_id == ctx.host))}
        port = PortPool(ctx.settings.port_min, ctx.settings.port_max).first_free(
            taken, ctx.settings.instance_host)
        with write_transaction(ctx.db):
            if reuse_volume_id:
                Volume.update(purpose="instance", job_id=job_id).where(
                    Volume.volume_id == volume_id).execute()
            else:
                Volume.create(volume_id=volume_id, org=org, purpose="instance", job_id=job_id, host_id=ctx.host)
            instance = Instance.create(
                instance_id=instance_id, org=org, state_id=state_id, image_id=image_id, job_id=job_id,
                volume_id=volume_id, status="starting", host=ctx.settings.instance_host, host_id=ctx.host,
                state_org=state_org, port=port,
                password=ctx.runtime.new_password(), name=name, tls=ctx.settings.instance_tls,
                expires_at=utcnow() + dt.timedelta(seconds=POOLED_LIFETIME if pooled else ttl_seconds))
    try:
        if not reuse_volume_id:
            ctx.store.clone_state(org, state_id, volume_id, from_org=state_org)
        endpoint = ctx.runtime.start(volume_path(ctx, org, volume_id), instance_run_dir(ctx, volume_id),
                                     port=port, listen_host=ctx.settings.instance_host,
                                     labels=instance_labels(instance), limits=instance_limits(ctx.settings, org),
                                     tls=server_tls(ctx, instance))
        failpoint(ctx.settings, "instance-start")  # running, not yet active
        if not pooled:
            ctx.runtime.set_password(endpoint, instance.password)
    except BaseException:
        release_volume(ctx, org, volume_id)
        instance.delete_instance()
        raise
    instance.status = "pooled" if pooled else "active"
    instance.save()
    return instance


class PendingBind:
    """A claimed pooled instance on its way to its owner: its new password is set in the
    background from the moment this is made, while the caller records the bind (:meth:`record`,
    in its own Control-DB transaction) and then waits for Postgres (:meth:`wait`) before committing.
    (Setting it re-derives nothing, see ``admin_connections.store_verifier``; but it is a round
    trip to another process, which the caller's writes need not wait for.)"""

    def __init__(self, ctx: AppContext, instance: Instance) -> None:
        self.instance = instance
        self.started = time.monotonic()
        instance.password = ctx.runtime.new_password()
        self._setting = _BINDS.submit(ctx.runtime.set_password, endpoint_of(ctx, instance), instance.password)

    def record(self, *, job_id: str | None, ttl_seconds: int, name: str | None) -> None:
        instance = self.instance
        instance.status, instance.job_id, instance.name = "active", job_id, name
        instance.created_at = utcnow()
        instance.expires_at = instance.created_at + dt.timedelta(seconds=ttl_seconds)
        instance.save()

    def wait(self) -> float:
        """Seconds since the bind began, once the password is set; raises if it could not be."""
        self._setting.result()
        return time.monotonic() - self.started

    def abandon(self) -> None:
        if not self._setting.done():
            self._setting.cancel()


def bind_pooled(ctx: AppContext, instance: Instance, *, job_id: str | None, ttl_seconds: int,
                name: str | None) -> Instance:
    """Hand a claimed pooled instance to its owner: fresh credentials, the owner's TTL and name
    (recorded while Postgres sets the password; rolled back if it cannot)."""
    pending = PendingBind(ctx, instance)
    try:
        with write_transaction(ctx.db):
            pending.record(job_id=job_id, ttl_seconds=ttl_seconds, name=name)
            pending.wait()
    finally:
        pending.abandon()
    return instance


_BINDS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="bind")


def endpoint_of(ctx: AppContext, instance: Instance):
    from appliance.runtime.base import Endpoint
    return Endpoint(host=instance.host, port=instance.port,
                    socket_dir=instance_run_dir(ctx, instance.volume_id), user=SUPERUSER)


def instance_labels(instance: Instance) -> dict[str, str]:
    return {"sqlrs.org": instance.org, "sqlrs.instance": instance.instance_id,
            "sqlrs.state": instance.state_id, "sqlrs.job": instance.job_id or ""}


def server_log_tail(ctx: AppContext, volume_id: str) -> bytes:
    """The last MiB of the Postgres server log of a clone (every runtime leaves it in the run dir)."""
    try:  # the run dir is the org's: no link is followed, nothing but a regular file is read
        return read_tail(instance_run_dir(ctx, volume_id) / SERVER_LOG, SERVER_LOG_TAIL_BYTES)
    except OSError:
        return b""


def release_volume(ctx: AppContext, org: str, volume_id: str) -> bytes:
    """Stop whatever runs on a clone (immediately: what it holds is about to be destroyed),
    destroy it, then forget it (in that order, crash-safe).

    Its run dir (socket, server log) goes last; the tail of the server log is returned, for a
    job to keep as an artifact. Cleanup is never cancelled, even inside a cancelled job."""
    path = volume_path(ctx, org, volume_id)
    with cancellable(None):
        if path.exists():  # its data goes with it: no shutdown checkpoint, nothing flushed to disk
            ctx.runtime.stop(path, mode="immediate")
        server_log = server_log_tail(ctx, volume_id)
        ctx.store.destroy_volume(org, volume_id)
    Volume.delete().where(Volume.volume_id == volume_id).execute()
    shutil.rmtree(instance_run_dir(ctx, volume_id), ignore_errors=True)
    return server_log


def destroy_instance(ctx: AppContext, instance: Instance, *, keep_row_as: str | None = None) -> bool:
    """Tear an instance down; keep its row with a final status (e.g. expired) or delete it.

    The row says ``deleting`` first, so the reconciler never mistakes a half torn-down
    instance for one whose Postgres died and tries to revive it. Another host's instance is
    only marked: its clone and process are that host's, and its reconciler finishes the job.

    Never raises for a failed teardown: it returns False and the row stays ``deleting`` with
    the error, keeping its port and its state, until the reconciler's retry (``retry_teardown``)
    gets through. Tearing down what another caller already tore down is no error."""
    if instance.host_id != ctx.host:
        Instance.update(status=DELETE_REQUESTED, teardown_keep_as=keep_row_as).where(
            Instance.instance_id == instance.instance_id).execute()
        return True
    lease = utcnow() + dt.timedelta(seconds=ctx.settings.teardown_retry_min_seconds)  # then the reconciler may take over
    Instance.update(status="deleting", teardown_keep_as=keep_row_as, teardown_retry_at=lease).where(
        Instance.instance_id == instance.instance_id).execute()
    instance.teardown_keep_as = keep_row_as
    return _tear_down(ctx, instance)


def retry_teardown(ctx: AppContext, instance: Instance) -> bool | None:
    """The reconciler's next attempt at a ``deleting`` instance of this host whose retry is due;
    None when another process took this attempt (each takes it by moving the retry time)."""
    lease = utcnow() + dt.timedelta(seconds=_backoff(ctx, instance.teardown_attempts + 1))
    taken = Instance.update(teardown_retry_at=lease).where(
        (Instance.instance_id == instance.instance_id) & (Instance.status == "deleting")
        & ((Instance.teardown_retry_at == instance.teardown_retry_at) if instance.teardown_retry_at is not None
           else Instance.teardown_retry_at.is_null())).execute()
    return _tear_down(ctx, instance) if taken else None


def _tear_down(ctx: AppContext, instance: Instance) -> bool:
    where = Instance.instance_id == instance.instance_id
    try:
        release_volume(ctx, instance.org, instance.volume_id)
    except Exception as exc:
        if not Instance.select().where(where).exists():
            return True  # torn down meanwhile by someone else
        attempts = instance.teardown_attempts + 1
        Instance.update(teardown_attempts=attempts, teardown_error=_reason(exc),
                        teardown_retry_at=utcnow() + dt.timedelta(seconds=_backoff(ctx, attempts))).where(where).execute()
        log.warning("could not tear down instance %s (attempt %d, the reconciler retries): %s",
                    instance.instance_id, attempts, exc)
        return False
    if instance.teardown_keep_as:
        Instance.update(status=instance.teardown_keep_as, port=None, teardown_error=None,
                        teardown_retry_at=None).where(where).execute()
    else:
        Instance.delete().where(where).execute()
    return True


def _backoff(ctx: AppContext, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, bounded."""
    settings = ctx.settings
    return min(settings.teardown_retry_max_seconds, settings.teardown_retry_min_seconds * 2 ** max(attempts - 1, 0))


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message[:2000]


def connection_count(ctx: AppContext, instance: Instance) -> int:
    return ctx.runtime.connection_count(endpoint_of(ctx, instance))
