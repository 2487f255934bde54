"""Runs one prepare job: resolve the base, build each uncached step, bind an instance.

Only step boundaries are snapshotted, after a clean ``pg_ctl -m fast`` stop, so every state
is a shutdown checkpoint. A state is committed to storage first and recorded second; a
failure in between destroys the snapshot, so a state exists fully or not at all.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from appliance import instances
from appliance.build import state_import
from appliance.build.out_of_space import out_of_space
from appliance.build.steps import step_kind
from appliance.context import AppContext
from appliance.control import audit, counters, quotas, sharing
from appliance.control.db import UNAVAILABLE as CONTROL_DB_UNAVAILABLE
from appliance.control.db import retry_while_unavailable, write_transaction
from appliance.control.models import BaseImage, PrepareJob, State, Task, Volume, utcnow
from appliance.errors import (
    ApplianceError,
    Cancelled,
    CommandFailed,
    ControlDbUnavailable,
    InternalError,
    QueueUnavailable,
)
from appliance.faults import failpoint
from appliance.job_artifacts import write_job_artifacts
from appliance.logs import log_context
from appliance.orchestrator import cache, parking, scheduling, warm_pool
from appliance.orchestrator.events import TERMINAL_STATUSES, append_event
from appliance.orchestrator.locks import LockSet, build_lock
from appliance.orchestrator.queue import UNAVAILABLE as QUEUE_UNAVAILABLE
from appliance.orchestrator.queue import enqueue_refill
from appliance.planning.hashing import base_key
from appliance.runtime.base import Endpoint
from appliance.runtime.cluster import STOCK_ROLES_SQL
from appliance.runtime.ports import ephemeral_port
from appliance.shell import cancellable

log = logging.getLogger(__name__)


@dataclass
class BuildCluster:
    """The one writable clone a job builds on; it sits at the last state the job reached."""

    volume_id: str
    path: Path
    run_dir: Path
    endpoint: Endpoint | None = None  # None while Postgres is stopped
    password: str | None = None  # set only while a TCP client (Liquibase) needs one

    @property
    def running(self) -> Endpoint:
        """Where the cluster listens; only asked while it runs."""
        if self.endpoint is None:
            raise InternalError("the build cluster is not running")
        return self.endpoint


class JobRun:
    """One claimed (running) job, from its first task to its artifacts."""

    def __init__(self, ctx: AppContext, job: PrepareJob):
        self.ctx, self.job, self.org = ctx, job, job.org
        self.locks = LockSet(ctx.redis, ttl_seconds=ctx.settings.job_lost_after_seconds, job_id=job.job_id)
        self.build: BuildCluster | None = None
        self.result: dict | None = None
        self._stop_heartbeat = threading.Event()
        self._import_considered = False
        self.server_logs: dict[str, bytes] = {}  # build clone -> its Postgres log, kept as artifacts
        self.kind = step_kind(job.prepare_kind)
        # What a step kind learns in one task for a later one, in this process only: a job parked
        # and resumed elsewhere starts without it, so a kind must manage without.
        self.scratch: dict[str, object] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def execute(self) -> None:
        with log_context(job_id=self.job.job_id, org=self.org):
            self._execute()

    def _execute(self) -> None:
        job = self.job
        append_event(job.job_id, "status", status="running")
        log.info("job started")  # the job's id, org (and each task's id) ride along in the log context
        heartbeat = threading.Thread(target=self._heartbeat, daemon=True)
        heartbeat.start()
        outcome: tuple[str, ApplianceError | None] | None = ("succeeded", None)
        try:
            self._run_tasks()
        except parking.Parked:  # back in the queue until the build it needs is done; not an end
            outcome = None
        except Cancelled as exc:
            outcome = ("cancelled", exc)
        except ApplianceError as exc:
            outcome = ("failed", exc)
        except CONTROL_DB_UNAVAILABLE as exc:  # lost mid-job: nothing half-recorded, the job fails
            log.warning("job %s: Control DB lost mid-job: %s", job.job_id, exc)
            outcome = ("failed", ControlDbUnavailable("the Control DB became unreachable during the job"))
        except QUEUE_UNAVAILABLE as exc:  # Redis (locks) away for longer than a restart takes
            log.warning("job %s: the queue (Redis) lost mid-job: %s", job.job_id, exc)
            outcome = ("failed", QueueUnavailable("the queue (Redis) was unreachable during the job for "
                                                  "longer than a restart takes; submit it again"))
        except Exception as exc:  # a bug or an unexpected platform failure: say so, keep details out
            log.exception("job %s failed unexpectedly", job.job_id)
            outcome = ("failed", InternalError(f"internal error: {type(exc).__name__}: {exc}"))
        try:
            # Tidy up before saying the job is over: a client that sees "failed" sees no clone left.
            if self.build is not None:
                self.release(self.build.volume_id)
        except Exception as exc:  # e.g. the Control DB went away: the reconciler releases it later
            log.warning("could not release the build clone of job %s now (%s); the reconciler will",
                        job.job_id, exc)
        finally:
            self._stop_heartbeat.set()
            heartbeat.join(timeout=5)
            if outcome is not None:
                ended = outcome
                retry_while_unavailable(lambda: self._finish(*ended), what=f"recording the end of job {job.job_id}",
                                        give_up_after=self.ctx.settings.control_db_retry_seconds)
                self._write_artifacts()

    def _write_artifacts(self) -> None:
        """The job's report and step logs go to the object store; an unreachable store costs
        the artifacts, never the job."""
        try:
            write_job_artifacts(self.ctx, self.job.job_id, server_logs=self.server_logs,
                                retain_seconds=self.ctx.settings.artifact_retention_seconds)
        except Exception as exc:
            log.warning("could not store the artifacts of job %s: %s", self.job.job_id, exc)

    def _heartbeat(self) -> None:
        """Two beats, each in its own thread: the Control-DB heartbeat (which the reconciler
        reads) may wait out a Control-DB restart, and must not starve the renewal of the Redis
        build locks meanwhile, or another job would start building the same state."""
        renewer = threading.Thread(target=self._beat, args=(self.locks.renew, "build locks"), daemon=True)
        renewer.start()
        self._beat(lambda: PrepareJob.update(heartbeat_at=utcnow()).where(
            PrepareJob.job_id == self.job.job_id).execute(), "heartbeat")
        renewer.join(timeout=5)

    def _beat(self, action, what: str) -> None:
        while not self._stop_heartbeat.wait(self.ctx.settings.job_heartbeat_seconds):
            try:
                action()
            except Exception as exc:  # never let a heartbeat thread die silently
                log.warning("%s of job %s failed: %s", what, self.job.job_id, exc)

    def cancelled(self) -> bool:
        return bool(PrepareJob.select(PrepareJob.cancel_requested)
                    .where(PrepareJob.job_id == self.job.job_id).scalar())

    def _finish(self, status: str, error: ApplianceError | None = None) -> None:
        """One transaction, so a retry after a Control-DB blip records the end exactly once."""
        with write_transaction(self.ctx.db):
            self._record_end(status, error)
        log.info("job %s%s", status, f" ({error.code}: {error.message})" if error is not None else "")

    def _record_end(self, status: str, error: ApplianceError | None) -> None:
        job = PrepareJob.get_by_id(self.job.job_id)
        now = utcnow()
        if job.status not in TERMINAL_STATUSES:  # counted once, even if the reconciler ended it first
            counters.job_finished(status, error.code if error is not None else None)
        if error is not None:
            job.error_json, job.error_code = json.dumps(error.to_dict()), error.code
            Task.update(status="cancelled" if status == "cancelled" else "failed", finished_at=now).where(
                (Task.job == job) & (Task.status == "running")).execute()
            Task.update(status="cancelled").where((Task.job == job) & (Task.status == "queued")).execute()
        job.status, job.finished_at = status, now
        job.save()
        if error is not None:
            append_event(job.job_id, "error", message=error.message, error=error.to_dict())
        append_event(job.job_id, "status", status=status)
        if status == "succeeded" and self.result is not None:
            append_event(job.job_id, "result", result=self.result)

    # -- tasks ---------------------------------------------------------------------------
    def _run_tasks(self) -> None:
        # Read afresh each time: planning a Liquibase job adds its steps as it goes.
        while (task := Task.select().where((Task.job == self.job) & (Task.status != "succeeded"))
               .order_by(Task.position).first()) is not None:
            if self.cancelled():
                raise Cancelled("job cancelled")
            if self.job.plan_only and task.type in ("state_execute", "prepare_instance"):  # planned: done
                self._finish_plan_only()
                return
            with log_context(task_id=task.task_id):
                self.task_status(task, "running")
                handler = self._handler(task.type)
                with cancellable(self.cancelled):  # psql, clone, start, snapshot: all stop on cancel
                    handler(task)
                if task.status != "succeeded":  # a batched Liquibase run records its steps itself
                    self.task_status(task, "succeeded")

    def _handler(self, task_type: str):
        common = {"resolve_image": self._resolve_image, "state_execute": self._execute_step,
                  "prepare_instance": self._prepare_instance}
        if task_type in common:
            return common[task_type]
        kind_handler = self.kind.task_handlers()[task_type]
        return lambda task: kind_handler(self, task)

    def _finish_plan_only(self) -> None:
        """A plan-only Liquibase job ends once its steps are known (``cached`` says what exists)."""
        now = utcnow()
        Task.update(status="succeeded", started_at=now, finished_at=now).where(
            (Task.job == self.job) & (Task.status == "queued")).execute()

    def task_status(self, task: Task, status: str) -> None:
        now = utcnow()
        task.status = status
        if status == "running":
            task.started_at = now
        else:
            task.finished_at = now
            if task.started_at is not None:
                task.duration_seconds = (now - task.started_at).total_seconds()
        with write_transaction(self.ctx.db):  # the row and its event in one commit
            task.save()
            if status == "succeeded":
                counters.step_finished(task, plan_only=self.job.plan_only)
            append_event(self.job.job_id, "task", task_id=task.task_id, status=status,
                         message=task.summary if status == "running" else None)
        log.debug("task %s", status)

    def note(self, task: Task, message: str) -> None:
        """A log line in the job's event stream, under the task it concerns."""
        append_event(self.job.job_id, "log", task_id=task.task_id, message=message)

    @property
    def base_key(self) -> str:
        return base_key(self.job.resolved_image_id)

    def _base_exists(self) -> bool:
        return BaseImage.select().where((BaseImage.org == self.org) & (BaseImage.base_key == self.base_key)
                                        & (BaseImage.host_id == self.ctx.host)).exists()

    def _resolve_image(self, task: Task) -> None:
        key = self.base_key
        if self._base_exists():
            self.note(task, f"base cluster for {self.job.resolved_image_id} is cached")
            return
        with self.locks.hold(build_lock("base", self.ctx.host, self.org, key), cancelled=self.cancelled):
            if self._base_exists():
                return
            self.note(task, f"initdb: creating the base cluster for {self.job.resolved_image_id}")
            volume_id = self.new_volume()
            path = self.ctx.store.create_volume(self.org, volume_id)
            try:
                self.ctx.runtime.init_cluster(path, self.job.resolved_image_id)
                self._add_stock_roles(volume_id, path)
                size = self.ctx.store.commit_base(self.org, volume_id, key)
                BaseImage.create(org=self.org, base_key=key, resolved_image_id=self.job.resolved_image_id,
                                 size_bytes=size, host_id=self.ctx.host)
            finally:
                instances.release_volume(self.ctx, self.org, volume_id)

    def _add_stock_roles(self, volume_id: str, path: Path) -> None:
        """What users' dumps expect of a stock cluster (``STOCK_ROLES_SQL``), the same on every
        runtime: through the runtime's own start and the host's psql, then a clean stop."""
        endpoint = self.ctx.runtime.start(path, instances.instance_run_dir(self.ctx, volume_id), port=5432,
                                          listen_host=None, labels={"sqlrs.org": self.org, "sqlrs.purpose": "base"})
        try:
            self.ctx.runner(self.ctx.runtime.psql_command(endpoint) + ["-q", "-c", STOCK_ROLES_SQL],
                            env=self.ctx.runtime.command_env(), run_as=self.ctx.identity_of(self.org), cwd="/")
        finally:
            self.ctx.runtime.stop(path, mode="fast")

    def _execute_step(self, task: Task) -> None:
        state_id = task.output_state_id
        if not self._import_considered and not self.state_exists(state_id):
            self._import_considered = True  # once, at the first step this host lacks
            state_import.import_if_cheaper(self, task)
        if self.state_exists(state_id):
            self._mark_cached(task, state_id)
            return
        run = self.kind.batch(self, task)  # [] unless one run of the tool can build several steps
        with contextlib.ExitStack() as held:
            for each in run or [task]:  # in chain order, as every job takes them
                held.enter_context(self.locks.hold(build_lock("state", self.ctx.host, self.org, each.output_state_id),
                                                   cancelled=self.cancelled))
            if self.state_exists(state_id):  # someone built it while we waited
                self._mark_cached(task, state_id)
                return
            run = list(itertools.takewhile(lambda t: not self.state_exists(t.output_state_id), run))
            task.cached = False
            task.save()
            cache.ensure_room(self.ctx, cache.next_states_bytes(self.ctx, self.org, task.input_kind, task.input_id,
                                                                 count=max(len(run), 1)))
            if len(run) > 1 and self.kind.apply_batch(self, run):
                return
            started = time.monotonic()
            build = self.build_cluster_at(task.input_kind, task.input_id)
            step = json.loads(task.step_json)
            self.kind.apply(self, task, build, step)
            self.ctx.runtime.stop(build.path, mode="fast")
            build.endpoint = None
            self.commit_and_record(task, build.volume_id, started)

    def commit_and_record(self, task: Task, volume_id: str, started: float) -> None:
        """Freeze a clone whose server is stopped into the task's state, and record it: both or
        neither (a snapshot without its row is removed here, or else by the reconciler)."""
        state_id = task.output_state_id
        self.note(task, "snapshot: start")
        snapshot_started = time.monotonic()
        try:
            size = self.ctx.store.commit_state(self.org, volume_id, state_id)
        except (OSError, CommandFailed) as exc:
            raise out_of_space(exc) or exc  # noqa: B904 (exc itself, or the cache's error in its place)
        snapshot_seconds = round(time.monotonic() - snapshot_started, 3)
        failpoint(self.ctx.settings, "snapshot")  # committed on disk, not yet recorded
        try:
            with write_transaction(self.ctx.db):
                State.create(org=self.org, state_id=state_id,
                             parent_state_id=task.input_id if task.input_kind == "state" else None,
                             image_id=self.job.resolved_image_id, prepare_kind=self.job.prepare_kind,
                             task_hash=task.task_hash, summary=task.summary, size_bytes=size,
                             host=self.ctx.host, build_seconds=round(time.monotonic() - started, 3),
                             snapshot_seconds=snapshot_seconds)
                counters.observe(counters.SNAPSHOT_DURATION, snapshot_seconds)
        except BaseException:
            with cancellable(None):
                self.ctx.store.destroy_state(self.org, state_id)
            raise
        self.note(task, f"snapshot: complete ({size} bytes)")

    def state_exists(self, state_id: str) -> bool:
        return self._copy_owner(state_id) is not None

    def _copy_owner(self, state_id: str) -> str | None:
        """Whose copy of the state this job uses here: its org's, or one shared with it."""
        return sharing.copy_owner(self.org, state_id, self.ctx.host)

    def _mark_cached(self, task: Task, state_id: str) -> None:
        task.cached = True
        task.save()
        self._touch_state(state_id)
        self.note(task, f"cache hit: state {state_id[:12]}")
        if self.build is not None:  # our clone is behind this state now: it is of no more use
            self.release(self.build.volume_id)
            self.build = None

    def _touch_state(self, state_id: str) -> None:
        owner = self._copy_owner(state_id) or self.org  # a shared copy in use must not look idle
        State.update(last_used_at=utcnow(), use_count=State.use_count + 1).where(
            (State.org == owner) & (State.state_id == state_id) & (State.host == self.ctx.host)).execute()

    def build_cluster_at(self, input_kind: str, input_id: str) -> BuildCluster:
        """A running build cluster at the step's input: keep ours, or clone the input afresh."""
        if self.build is None:
            volume_id = self.new_volume()
            if input_kind == "image":
                path = self.ctx.store.clone_base(self.org, self.base_key, volume_id)
            else:
                path = self.ctx.store.clone_state(self.org, input_id, volume_id,
                                                  from_org=self._copy_owner(input_id))
            self.build = BuildCluster(volume_id, path, instances.instance_run_dir(self.ctx, volume_id))
            failpoint(self.ctx.settings, "clone")
        if self.build.endpoint is None:
            tcp = self.kind.over_tcp
            self.build.endpoint = self.ctx.runtime.start(
                self.build.path, self.build.run_dir, port=ephemeral_port() if tcp else 5432,
                listen_host="127.0.0.1" if tcp else None,
                labels={"sqlrs.org": self.org, "sqlrs.job": self.job.job_id, "sqlrs.purpose": "build"})
            self.kind.opened(self, self.build)
        return self.build

    def release(self, volume_id: str) -> None:
        if server_log := instances.release_volume(self.ctx, self.org, volume_id):
            self.server_logs[volume_id] = server_log

    def new_volume(self) -> str:
        volume_id = instances.new_id()
        Volume.create(volume_id=volume_id, org=self.org, purpose="build", job_id=self.job.job_id,
                      host_id=self.ctx.host)
        return volume_id

    def _prepare_instance(self, task: Task) -> None:
        state_id = task.input_id
        reuse, instance, pooled_hit = None, None, False
        if self.build is not None:  # the clone we built on is already at the final state
            reuse, self.build = self.build.volume_id, None
            self.server_logs[reuse] = instances.server_log_tail(self.ctx, reuse)  # the build's part
        elif warm_pool.enabled(self.ctx):
            quotas.check_bind(self.ctx.settings, self.org)
            instance = warm_pool.claim(self.ctx, self.org, state_id, job_id=self.job.job_id,
                                       ttl_seconds=self.job.instance_ttl_seconds, name=self.job.instance_name)
            if instance is not None:
                pooled_hit = True
                self.note(task, warm_pool.BOUND_MESSAGE)
        if instance is None:
            quotas.check_bind(self.ctx.settings, self.org)
            instance = instances.create_instance(
                self.ctx, org=self.org, state_id=state_id, image_id=self.job.resolved_image_id,
                state_org=None if reuse else self._copy_owner(state_id),
                job_id=self.job.job_id, ttl_seconds=self.job.instance_ttl_seconds,
                name=self.job.instance_name, reuse_volume_id=reuse)
        if warm_pool.enabled(self.ctx):
            enqueue_refill(self.ctx.redis, self.ctx.host)
        self._touch_state(state_id)
        audit.instance_bound(self.job, instance, from_pool=pooled_hit)
        PrepareJob.update(result_state_id=state_id, result_instance_id=instance.instance_id).where(
            PrepareJob.job_id == self.job.job_id).execute()
        self.note(task, f"instance {instance.instance_id} listening on {instance.host}:{instance.port}")
        self.result = {"instance_id": instance.instance_id, "state_id": state_id,
                       "image_id": self.job.resolved_image_id}


def run_next_job(ctx: AppContext) -> None:
    """A worker took a token: run the job the scheduler names, if any may start now."""
    job, waiting = retry_while_unavailable(lambda: scheduling.claim_next(ctx), what="picking the next job",
                                           give_up_after=ctx.settings.control_db_retry_seconds)
    if job is None:  # nothing queued here (cancelled, moved, run by another token) or all at quota
        scheduling.keep_token_for(ctx, waiting)
        return
    JobRun(ctx, job).execute()
