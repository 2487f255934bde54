"""The reaper/reconciler: make the machine match the Control DB, and the DB match reality.

It fails jobs whose worker went silent (SIGKILL, host loss), re-enqueues queued jobs Redis
forgot, reaps expired instances, and removes every clone that no live row owns. Each pass
is idempotent; running it twice, or in two processes, does no harm.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field

from ..artifacts.jobs import sweep_expired_artifacts
from ..context import AppContext
from ..control.db import write_transaction
from ..control.models import BaseImage, Instance, PrepareJob, State, Task, Volume, utcnow
from ..engine import instances
from ..errors import InternalError
from . import cache, warm_pool
from .events import TERMINAL_STATUSES, append_event
from .queue import enqueue_prepare, is_known_to_redis

log = logging.getLogger(__name__)
ORPHAN_GRACE_SECONDS = 60  # a snapshot is committed a moment before its row is written


@dataclass
class ReconcileReport:
    lost_jobs: list[str] = field(default_factory=list)
    requeued_jobs: list[str] = field(default_factory=list)
    expired_instances: list[str] = field(default_factory=list)
    revived_instances: list[str] = field(default_factory=list)
    failed_instances: list[str] = field(default_factory=list)
    released_volumes: list[str] = field(default_factory=list)
    orphan_paths: list[str] = field(default_factory=list)
    evicted_states: list[str] = field(default_factory=list)
    expired_artifacts: int = 0
    pooled_instances: int = 0


def reconcile(ctx: AppContext, *, orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS) -> ReconcileReport:
    report = ReconcileReport()
    _fail_lost_jobs(ctx, report)
    _requeue_forgotten_jobs(ctx, report)
    _reap_expired_instances(ctx, report)
    _revive_stopped_instances(ctx, report)
    _release_unowned_volumes(ctx, report)
    _remove_orphans_on_disk(ctx, report, orphan_grace_seconds)
    report.expired_artifacts = _sweep_artifacts(ctx)
    report.pooled_instances = _refill_warm_pool(ctx)
    eviction = cache.evict(ctx, trigger="reconciler")
    if eviction is not None:
        report.evicted_states = [e["state_id"] for e in json.loads(eviction.evicted_json)]
    return report


def _fail_lost_jobs(ctx: AppContext, report: ReconcileReport) -> None:
    deadline = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds)
    for job in PrepareJob.select().where((PrepareJob.status == "running") &
                                         (PrepareJob.heartbeat_at < deadline)):
        error = InternalError(f"the worker running this job ({job.worker}) stopped responding; "
                              "nothing it was building was recorded")
        now = utcnow()
        with write_transaction(ctx.db):
            updated = PrepareJob.update(status="failed", finished_at=now,
                                        error_json=json.dumps(error.to_dict())).where(
                (PrepareJob.job_id == job.job_id) & (PrepareJob.status == "running")).execute()
            if not updated:
                continue
            Task.update(status="failed", finished_at=now).where(
                (Task.job == job) & (Task.status == "running")).execute()
            Task.update(status="cancelled").where((Task.job == job) & (Task.status == "queued")).execute()
            append_event(job.job_id, "error", message=error.message, error=error.to_dict())
            append_event(job.job_id, "status", status="failed")
        report.lost_jobs.append(job.job_id)
        log.warning("job %s failed: worker %s lost", job.job_id, job.worker)


def _requeue_forgotten_jobs(ctx: AppContext, report: ReconcileReport) -> None:
    settled = utcnow() - dt.timedelta(seconds=5)
    for job in PrepareJob.select().where((PrepareJob.status == "queued") &
                                         (PrepareJob.created_at < settled)):
        if not is_known_to_redis(ctx.redis, job.job_id):
            enqueue_prepare(ctx.redis, job.job_id, timeout_seconds=ctx.settings.step_timeout_seconds * 10)
            report.requeued_jobs.append(job.job_id)


def _reap_expired_instances(ctx: AppContext, report: ReconcileReport) -> None:
    for instance in Instance.select().where((Instance.status == "active") &
                                            (Instance.expires_at < utcnow())):
        try:
            instances.destroy_instance(ctx, instance, keep_row_as="expired")
            report.expired_instances.append(instance.instance_id)
        except Exception as exc:
            log.error("could not reap instance %s: %s", instance.instance_id, exc)


def _refill_warm_pool(ctx: AppContext) -> int:
    try:
        return warm_pool.refill(ctx)
    except Exception as exc:  # e.g. no free port: the pool waits, the rest of the pass goes on
        log.warning("warm pool refill failed: %s", exc)
        return 0


def _sweep_artifacts(ctx: AppContext) -> int:
    try:
        return sweep_expired_artifacts(ctx)
    except Exception as exc:  # the object store being away must not stop the rest of the pass
        log.warning("artifact sweep failed: %s", exc)
        return 0


def _revive_stopped_instances(ctx: AppContext, report: ReconcileReport) -> None:
    """After a host reboot (or an OOM kill) an active instance's Postgres is gone: start it again
    on its own port, so its DSN works again; if that fails, the instance is failed and released."""
    for instance in Instance.select().where(Instance.status.in_(["active", "pooled"])
                                            & (Instance.expires_at >= utcnow())):
        path = ctx.store.volume_path(instance.org, instance.volume_id)
        if ctx.runtime.is_running(path):
            continue
        if not ctx.runtime.restart_after_crash:
            log.warning("instance %s is no longer running (killed or crashed); failing it", instance.instance_id)
            instances.destroy_instance(ctx, instance, keep_row_as="failed")
            report.failed_instances.append(instance.instance_id)
            continue
        try:
            ctx.runtime.stop(path, mode="immediate")  # clears what a killed postmaster left behind
            ctx.runtime.start(path, instances.instance_run_dir(ctx, instance.volume_id), port=instance.port,
                              listen_host=ctx.settings.instance_host, labels=instances.instance_labels(instance))
            report.revived_instances.append(instance.instance_id)
            log.warning("instance %s was not running; started it again", instance.instance_id)
        except Exception as exc:
            log.error("instance %s is not running and could not be started (%s); failing it",
                      instance.instance_id, exc)
            instances.destroy_instance(ctx, instance, keep_row_as="failed")


def _release_unowned_volumes(ctx: AppContext, report: ReconcileReport) -> None:
    live_jobs = {j.job_id for j in PrepareJob.select(PrepareJob.job_id)
                 .where(PrepareJob.status.not_in(list(TERMINAL_STATUSES)))}
    live_instances = {i.volume_id for i in Instance.select(Instance.volume_id)
                      .where(Instance.status.in_(["starting", "active", "pooled", "binding"]))}
    for volume in Volume.select():
        owned = (volume.job_id in live_jobs if volume.purpose == "build"
                 else volume.volume_id in live_instances)
        if owned:
            continue
        try:
            instances.release_volume(ctx, volume.org, volume.volume_id)
            report.released_volumes.append(volume.volume_id)
        except Exception as exc:
            log.error("could not release volume %s: %s", volume.volume_id, exc)


def _remove_orphans_on_disk(ctx: AppContext, report: ReconcileReport, grace: float) -> None:
    def unclaimed_for_long(path) -> bool:
        # ctime, not mtime: copies keep the source's mtime, but the rename into place sets ctime.
        try:
            return time.time() - path.stat().st_ctime > grace
        except FileNotFoundError:
            return False

    def being_built(kind: str, org: str, key: str) -> bool:
        return bool(ctx.redis.exists(f"sqlrs:lock:{kind}:{org}:{key}"))

    known_volumes = {v.volume_id for v in Volume.select(Volume.volume_id)}
    for org, volume_id in ctx.store.list_volumes():
        if volume_id not in known_volumes and unclaimed_for_long(ctx.store.volume_path(org, volume_id)):
            path = ctx.store.volume_path(org, volume_id)
            ctx.runtime.stop(path, mode="immediate")
            ctx.store.destroy_volume(org, volume_id)
            report.orphan_paths.append(str(path))
    known_states = {(s.org, s.state_id) for s in State.select(State.org, State.state_id)}
    for org, state_id in ctx.store.list_states():
        path = ctx.store.state_path(org, state_id)
        if ((org, state_id) not in known_states and unclaimed_for_long(path)
                and not being_built("state", org, state_id)):
            ctx.store.destroy_state(org, state_id)
            report.orphan_paths.append(str(path))
    known_bases = {(b.org, b.base_key) for b in BaseImage.select(BaseImage.org, BaseImage.base_key)}
    for org, key in ctx.store.list_bases():
        path = ctx.store.base_path(org, key)
        if (org, key) not in known_bases and unclaimed_for_long(path) and not being_built("base", org, key):
            ctx.store.destroy_base(org, key)
            report.orphan_paths.append(str(path))


