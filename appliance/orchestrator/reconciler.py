"""The reaper/reconciler: make the machine match the Control DB, and the DB match reality.

It fails jobs whose worker went silent (SIGKILL, host loss), re-enqueues queued jobs Redis
forgot (moving them off hosts that went down), reaps expired instances, and removes every
clone that no live row owns. Everything on disk is one host's: each host's reconciler looks
after its own store, ports and instances only, and writes the host's heartbeat. Each pass is
idempotent; running it twice, or in two processes, does no harm.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, field

from appliance import instances, sources
from appliance.context import AppContext
from appliance.control import audit, counters, quotas
from appliance.control.db import write_transaction
from appliance.control.models import BaseImage, Instance, PrepareJob, State, Task, Volume, utcnow
from appliance.errors import InternalError
from appliance.ids import is_hex_id
from appliance.job_artifacts import sweep_expired_artifacts
from appliance.objectstore import ownership
from appliance.orchestrator import cache, hosts, parking, retention, transfers, warm_pool
from appliance.orchestrator.events import TERMINAL_STATUSES, append_event
from appliance.orchestrator.locks import build_lock_key
from appliance.orchestrator.placement import place
from appliance.orchestrator.queue import enqueue_token, is_known_to_redis, token_count

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    lost_jobs: list[str] = field(default_factory=list)
    lost_transfers: list[str] = field(default_factory=list)
    requeued_transfers: list[str] = field(default_factory=list)
    requeued_jobs: list[str] = field(default_factory=list)
    woken_jobs: list[str] = field(default_factory=list)  # parked on a lock nobody holds any more
    replaced_jobs: list[str] = field(default_factory=list)
    finished_deletions: list[str] = field(default_factory=list)
    retried_teardowns: list[str] = field(default_factory=list)
    expired_instances: list[str] = field(default_factory=list)
    revived_instances: list[str] = field(default_factory=list)
    failed_instances: list[str] = field(default_factory=list)
    released_volumes: list[str] = field(default_factory=list)
    orphan_paths: list[str] = field(default_factory=list)
    orphan_servers: list[str] = field(default_factory=list)
    evicted_states: list[str] = field(default_factory=list)
    orphan_sources: list[str] = field(default_factory=list)
    expired_artifacts: int = 0
    pruned_jobs: int = 0
    pruned_audit_rows: int = 0
    pooled_instances: int = 0


def reconcile(ctx: AppContext, *, orphan_grace_seconds: float | None = None,
              control_db_reachable_since: dt.datetime | None = None) -> ReconcileReport:
    """One pass. ``control_db_reachable_since``: when the Control DB came back after an outage;
    until it has been back for ``job_lost_after_seconds`` no job is judged lost, because its
    worker's heartbeats could not be written either."""
    report = ReconcileReport()
    if orphan_grace_seconds is None:
        orphan_grace_seconds = ctx.settings.orphan_grace_seconds
    hosts.heartbeat(ctx)
    lost_after = dt.timedelta(seconds=ctx.settings.job_lost_after_seconds)
    if control_db_reachable_since is None or utcnow() - control_db_reachable_since >= lost_after:
        _fail_lost_jobs(ctx, report)
        report.lost_transfers = transfers.fail_lost_transfers(ctx)
    _requeue_forgotten_jobs(ctx, report)
    report.requeued_transfers = transfers.requeue_forgotten_transfers(ctx)
    report.woken_jobs = parking.wake_orphans(ctx.redis)
    _move_jobs_off_unavailable_hosts(ctx, report)
    _finish_requested_deletions(ctx, report)
    _retry_failed_teardowns(ctx, report)
    _fail_abandoned_instances(ctx, report)
    _reap_expired_instances(ctx, report)
    _revive_stopped_instances(ctx, report)
    _release_unowned_volumes(ctx, report)
    _remove_orphans_on_disk(ctx, report, orphan_grace_seconds)
    _stop_unowned_servers(ctx, report)
    _sweep_object_store(ctx, report, orphan_grace_seconds)
    report.pooled_instances = _refill_warm_pool(ctx)
    _prune_history(ctx, report)
    eviction = cache.evict(ctx, trigger="reconciler")
    if eviction is not None:
        report.evicted_states = [e["state_id"] for e in json.loads(eviction.evicted_json)]
    _record(ctx, report)
    return report


def _record(ctx: AppContext, report: ReconcileReport) -> None:
    """What the pass repaired or removed goes to the audit log (``reconciler.repaired``), so an
    operator can tell after the fact why a job failed or a clone vanished. Routine work
    (warm-pool refills) is left out."""
    repaired = {name: value for name, value in vars(report).items() if value and name != "pooled_instances"}
    if repaired:
        audit.record(org=None, actor=f"reconciler:{ctx.host}", action="reconciler.repaired", outcome="ok",
                     details=repaired)


def _fail_lost_jobs(ctx: AppContext, report: ReconcileReport) -> None:
    deadline = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds)
    for job in PrepareJob.select().where((PrepareJob.status == "running") &
                                         (PrepareJob.heartbeat_at < deadline)):
        error = InternalError(f"the worker running this job ({job.worker}) stopped responding; "
                              "nothing it was building was recorded")
        now = utcnow()
        with write_transaction(ctx.db):
            updated = PrepareJob.update(status="failed", finished_at=now,
                                        error_json=json.dumps(error.to_dict()), error_code=error.code).where(
                (PrepareJob.job_id == job.job_id) & (PrepareJob.status == "running")).execute()
            if not updated:
                continue
            counters.job_finished("failed", error.code)
            Task.update(status="failed", finished_at=now).where(
                (Task.job == job) & (Task.status == "running")).execute()
            Task.update(status="cancelled").where((Task.job == job) & (Task.status == "queued")).execute()
            append_event(job.job_id, "error", message=error.message, error=error.to_dict())
            append_event(job.job_id, "status", status="failed")
        report.lost_jobs.append(job.job_id)
        log.warning("job %s failed: worker %s lost", job.job_id, job.worker)


def _requeue_forgotten_jobs(ctx: AppContext, report: ReconcileReport) -> None:
    """Each host's queue needs a token per queued job; after a Redis restart it has none.
    A surplus token is harmless (it finds nothing to run), so two reconcilers may both top up."""
    settled = utcnow() - dt.timedelta(seconds=5)  # a job just recorded gets its token from its submitter
    waiting: dict[str, list[str]] = {}
    for job_id, host in (PrepareJob.select(PrepareJob.job_id, PrepareJob.host_id)
                         .where((PrepareJob.status == "queued") & (PrepareJob.created_at < settled)
                                & PrepareJob.host_id.is_null(False) & PrepareJob.parked_on.is_null())
                         .order_by(PrepareJob.created_at).tuples()):
        waiting.setdefault(host, []).append(job_id)
    for host, job_ids in waiting.items():
        missing = len(job_ids) - token_count(ctx.redis, host)
        if missing <= 0:
            continue
        # A job id RQ still knows (its entry may be running another job) gets a token of a new id.
        by_known = sorted(job_ids, key=lambda j: is_known_to_redis(ctx.redis, j))
        for job_id in by_known[:missing]:
            enqueue_token(ctx.redis, host, job_id, requeued=is_known_to_redis(ctx.redis, job_id))
            report.requeued_jobs.append(job_id)


def _move_jobs_off_unavailable_hosts(ctx: AppContext, report: ReconcileReport) -> None:
    """A queued job waits for its host's workers; when that host is drained or down, place it
    again among the hosts that are up (the old queue entry is refused if its host returns)."""
    up = set(hosts.up_host_ids(ctx.settings))
    if not up:
        return
    for job in PrepareJob.select().where((PrepareJob.status == "queued") & PrepareJob.host_id.is_null(False)
                                         & PrepareJob.host_id.not_in(list(up))):
        chain = [t.output_state_id for t in Task.select(Task.output_state_id)
                 .where((Task.job == job) & (Task.type == "state_execute")).order_by(Task.position)]
        placement = place(ctx, job.org, chain, exclude={job.host_id})
        moved = PrepareJob.update(host_id=placement.host_id, parked_on=None).where(
            (PrepareJob.job_id == job.job_id) & (PrepareJob.status == "queued")
            & (PrepareJob.host_id == job.host_id)).execute()
        if not moved:
            continue
        append_event(job.job_id, "log", task_id="plan",
                     message=f"host {job.host_id} is unavailable; placed again on {placement.reason}")
        enqueue_token(ctx.redis, placement.host_id, job.job_id)
        report.replaced_jobs.append(job.job_id)
        log.warning("job %s moved from unavailable host %s to %s", job.job_id, job.host_id, placement.host_id)


def _finish_requested_deletions(ctx: AppContext, report: ReconcileReport) -> None:
    """Instances deleted through another host's API: tear them down here, where they run."""
    for instance in Instance.select().where((Instance.status == instances.DELETE_REQUESTED)
                                            & (Instance.host_id == ctx.host)):
        if instances.destroy_instance(ctx, instance, keep_row_as=instance.teardown_keep_as):
            report.finished_deletions.append(instance.instance_id)


def _retry_failed_teardowns(ctx: AppContext, report: ReconcileReport) -> None:
    """Instances left ``deleting`` (their teardown failed, or whoever ran it died): try again
    once each one's retry is due; a failure moves the next try further out (bounded backoff)."""
    for instance in Instance.select().where(
            (Instance.status == "deleting") & (Instance.host_id == ctx.host)
            & (Instance.teardown_retry_at.is_null() | (Instance.teardown_retry_at <= utcnow()))):
        if instances.retry_teardown(ctx, instance):
            report.retried_teardowns.append(instance.instance_id)


def _fail_abandoned_instances(ctx: AppContext, report: ReconcileReport) -> None:
    """An instance whose creator died between starting Postgres and handing it out would stay
    ``starting`` (or ``binding``) for ever, holding a clone, a port and a Postgres: its job has
    ended, or, job-less (a warm-pool refill), it is older than the orphan grace."""
    ended = PrepareJob.select(PrepareJob.job_id).where(PrepareJob.status.in_(list(TERMINAL_STATUSES)))
    stale = utcnow() - dt.timedelta(seconds=ctx.settings.orphan_grace_seconds)
    for instance in Instance.select().where(
            Instance.status.in_(["starting", warm_pool.BINDING]) & (Instance.host_id == ctx.host)
            & (Instance.job_id.in_(ended) | (Instance.job_id.is_null() & (Instance.created_at < stale)))):
        try:
            instances.destroy_instance(ctx, instance, keep_row_as="failed")
            report.failed_instances.append(instance.instance_id)
            log.warning("instance %s was abandoned while %s; removed it", instance.instance_id, instance.status)
        except Exception as exc:
            log.error("could not remove abandoned instance %s: %s", instance.instance_id, exc)


def _reap_expired_instances(ctx: AppContext, report: ReconcileReport) -> None:
    for instance in Instance.select().where((Instance.status == "active") & (Instance.host_id == ctx.host) &
                                            (Instance.expires_at < utcnow())):
        try:
            instances.destroy_instance(ctx, instance, keep_row_as="expired")
            report.expired_instances.append(instance.instance_id)
        except Exception as exc:
            log.error("could not reap instance %s: %s", instance.instance_id, exc)


def _prune_history(ctx: AppContext, report: ReconcileReport) -> None:
    pruned = retention.prune(ctx)
    report.pruned_jobs, report.pruned_audit_rows = pruned.jobs, pruned.audit_rows


def _refill_warm_pool(ctx: AppContext) -> int:
    try:
        return warm_pool.refill(ctx)
    except Exception as exc:  # e.g. no free port: the pool waits, the rest of the pass goes on
        log.warning("warm pool refill failed: %s", exc)
        return 0


def _sweep_object_store(ctx: AppContext, report: ReconcileReport, grace: float) -> None:
    """Expired artifacts and orphaned uploads. Listing a bucket is not free, so each host does
    it at most every ``object_sweep_interval_seconds``."""
    if not ctx.redis.set(f"sqlrs:object-sweep:{ctx.host}", 1, nx=True,
                         ex=max(1, int(ctx.settings.object_sweep_interval_seconds))):
        return
    try:
        ownership.check(ctx.objects, ctx.objects.installation_id, ctx.settings.objects_url)
        report.expired_artifacts = sweep_expired_artifacts(ctx)
        report.orphan_sources = sources.sweep_orphans(ctx, grace)
    except Exception as exc:  # the object store being away must not stop the rest of the pass
        log.warning("object-store sweep failed: %s", exc)


def _revive_stopped_instances(ctx: AppContext, report: ReconcileReport) -> None:
    """After a host reboot (or an OOM kill) an active instance's Postgres is gone: start it again
    on its own port, so its DSN works again; if that fails, the instance is failed and released."""
    for instance in Instance.select().where(Instance.status.in_(["active", "pooled"])
                                            & (Instance.host_id == ctx.host)
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
            endpoint = ctx.runtime.start(path, instances.instance_run_dir(ctx, instance.volume_id),
                                         port=instance.port, listen_host=ctx.settings.instance_host,
                                         labels=instances.instance_labels(instance),
                                         limits=quotas.instance_limits(ctx.settings, instance.org),
                                         tls=instances.server_tls(ctx, instance))
            # Instances commit without waiting for the WAL (synchronous_commit = off): a password
            # set moments before the crash may not have survived it. The Control DB's is the truth
            # (a pooled clone has none yet: it is set when the clone is bound).
            if instance.status == "active":
                ctx.runtime.set_password(endpoint, instance.password)
            report.revived_instances.append(instance.instance_id)
            log.warning("instance %s was not running; started it again", instance.instance_id)
        except Exception as exc:
            log.error("instance %s is not running and could not be started (%s); failing it",
                      instance.instance_id, exc)
            instances.destroy_instance(ctx, instance, keep_row_as="failed")


def _release_unowned_volumes(ctx: AppContext, report: ReconcileReport) -> None:
    live_jobs = {j.job_id for j in PrepareJob.select(PrepareJob.job_id)  # along the status index
                 .where(PrepareJob.status.in_(["queued", "running"]))}
    live_instances = {i.volume_id for i in Instance.select(Instance.volume_id)  # a teardown's are its own
                      .where(Instance.status.in_(["starting", "active", "pooled", "binding", "deleting",
                                                  instances.DELETE_REQUESTED]))}
    for volume in Volume.select().where(Volume.host_id == ctx.host):
        owned = (volume.job_id in live_jobs if volume.purpose == "build"
                 else volume.volume_id in live_instances)
        if owned:
            continue
        try:
            instances.release_volume(ctx, volume.org, volume.volume_id)
            report.released_volumes.append(volume.volume_id)
        except Exception as exc:
            log.error("could not release volume %s: %s", volume.volume_id, exc)


def _stop_unowned_servers(ctx: AppContext, report: ReconcileReport) -> None:
    """Servers (postmasters, containers, Nomad jobs) on clones of this store that no host's
    Control-DB row knows, found by asking the runtime, not the disk: a clone removed by hand, or
    rows lost to a Control-DB restore, leave them running. A clone's row is always written before
    its server starts, so there is no window to wait out."""
    try:
        servers = ctx.runtime.running_volumes()
    except Exception as exc:  # the engine or Nomad being away must not stop the rest of the pass
        log.warning("could not list the runtime's servers: %s", exc)
        return
    ours = [p for p in servers if ctx.store.is_volume_path(p)]
    known = {v.volume_id for v in Volume.select(Volume.volume_id).where(Volume.volume_id.in_([p.name for p in ours]))}
    for path in ours:
        if path.name in known:
            continue
        try:
            ctx.runtime.stop(path, mode="immediate")
            report.orphan_servers.append(str(path))
            log.warning("stopped a server no Control-DB row owns, on %s", path)
        except Exception as exc:
            log.warning("could not stop the orphaned server on %s: %s", path, exc)


def _known_states(host: str, state_ids: set[str], chunk: int = 500) -> set[tuple[str, str]]:
    """Which of the states found on disk have a row here: asked for those only, so a pass costs
    what the store holds, not what the Control DB remembers."""
    known: set[tuple[str, str]] = set()
    ordered = sorted(state_ids)
    for start in range(0, len(ordered), chunk):
        known |= set(State.select(State.org, State.state_id).where(
            (State.host == host) & State.state_id.in_(ordered[start:start + chunk])).tuples())
    return known


def _remove_orphans_on_disk(ctx: AppContext, report: ReconcileReport, grace: float) -> None:
    def unclaimed_for_long(path) -> bool:
        # ctime, not mtime: copies keep the source's mtime, but the rename into place sets ctime.
        try:
            return time.time() - path.stat().st_ctime > grace
        except FileNotFoundError:
            return False

    def being_built(kind: str, org: str, key: str) -> bool:
        return bool(ctx.redis.exists(build_lock_key(kind, ctx.host, org, key)))

    def remove(path, destroy, *args) -> None:
        try:
            destroy(*args)
            report.orphan_paths.append(str(path))
        except Exception as exc:  # e.g. a clone still depends on it: the next pass tries again
            log.warning("could not remove orphan %s: %s", path, exc)

    known_volumes = {v.volume_id for v in Volume.select(Volume.volume_id).where(Volume.host_id == ctx.host)}
    for org, volume_id in ctx.store.list_volumes():
        path = ctx.store.volume_path(org, volume_id)
        if volume_id not in known_volumes and unclaimed_for_long(path):
            ctx.runtime.stop(path, mode="immediate")
            remove(path, ctx.store.destroy_volume, org, volume_id)
    on_disk = list(ctx.store.list_states())
    known_states = _known_states(ctx.host, {state_id for _, state_id in on_disk})
    for org, state_id in on_disk:
        path = ctx.store.state_path(org, state_id)
        if ((org, state_id) not in known_states and unclaimed_for_long(path)
                and not being_built("state", org, state_id)):
            remove(path, ctx.store.destroy_state, org, state_id)
    known_bases = {(b.org, b.base_key) for b in BaseImage.select(BaseImage.org, BaseImage.base_key)
                   .where(BaseImage.host_id == ctx.host)}
    for org, key in ctx.store.list_bases():
        path = ctx.store.base_path(org, key)
        if (org, key) not in known_bases and unclaimed_for_long(path) and not being_built("base", org, key):
            remove(path, ctx.store.destroy_base, org, key)
    for run_dir in ctx.run_dir.glob("*") if ctx.run_dir.is_dir() else []:  # named after their clone
        if (is_hex_id(run_dir.name) and run_dir.name not in known_volumes and run_dir.is_dir()
                and unclaimed_for_long(run_dir)):
            remove(run_dir, shutil.rmtree, run_dir)


