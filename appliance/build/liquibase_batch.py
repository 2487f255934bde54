"""Many changesets, one JVM: a run of uncached changesets is applied by one Liquibase
``update-count``, and every changeset still becomes its own state.

A Liquibase start costs about 1.6 s of JVM, more than most changesets take to run. So one
Liquibase applies the whole run, and the appliance catches it at each changeset boundary: it
holds a SHARE lock on ``databasechangelog`` from its own connection. Liquibase commits a
changeset, then inserts the changeset's row in ``databasechangelog``, and that insert waits on
the lock. At that instant the changeset's effects are committed and its row is not: the build
volume is forked there, after a checkpoint (an atomic filesystem snapshot: what a crash at
that instant would leave, with nothing to replay but the insert in flight). Then the insert is
let through and the lock taken again, which waits until Liquibase
has committed the row; the appliance reads that row.

Each fork becomes the changeset's state in the background while Liquibase goes on (a few forks
at once, recorded in order): Postgres starts on it and recovers, the row Liquibase wrote is
inserted as it was written, Liquibase's own lock row is released, the last applied changeset is
checked against the plan, the build password removed, and the cluster stopped cleanly and
snapshotted like any state. The last changeset of the run is snapshotted from the build cluster
itself, as a one-changeset run is.

Used where the storage driver can fork a volume in use (``forks_in_use``) and the changelog
table exists, or can be created on the base exactly as Liquibase would create it: with the
statements its ``update-sql`` printed when this job planned. Anything else runs one
``update-count --count=1`` per changeset (:func:`liquibase_steps.apply`) until the table exists.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import psycopg2

from appliance import instances
from appliance.build.liquibase_steps import (
    TABLES_SQL,
    command_of,
    confined,
    connection,
    liquibase_message,
    open_for_liquibase,
    psql,
    seal,
    work_dir,
)
from appliance.control.models import Task
from appliance.errors import CommandFailed, StepFailed
from appliance.runtime.base import SUPERUSER, pgdata_of

if TYPE_CHECKING:
    from appliance.build.job import BuildCluster, JobRun

log = logging.getLogger(__name__)
_CHANGESET_ROW = re.compile(r"^\s*INSERT\s+INTO\s+(\S+\.)?databasechangelog\b", re.I)
_POLL_SECONDS = 0.005
_SETTLERS = 3  # forks made into states at once


def batch_of(run: JobRun, task: Task) -> list[Task]:
    """The uncached Liquibase steps from ``task`` on, in order, when one Liquibase may apply
    them together; [] when this job or host goes one changeset at a time."""
    if not run.ctx.settings.liquibase_one_jvm_per_run or not run.ctx.store.forks_in_use:
        return []
    following = (Task.select().where((Task.job == run.job) & (Task.type == "state_execute")
                                     & (Task.position > task.position) & (Task.status == "queued"))
                 .order_by(Task.position))
    batch = []
    for each in [task, *following]:
        if run.state_exists(each.output_state_id):
            break
        batch.append(each)
    return batch if len(batch) > 1 else []


class ChangelogGate:
    """A SHARE lock on ``databasechangelog``, at which Liquibase's insert of each changeset's
    row waits until it is let through. Two connections hand the lock over: the next one queues
    its lock behind the waiting insert before the current one lets go, so the lock is back in
    place before Liquibase can reach the next changeset's insert, however fast that one is."""

    def __init__(self, port: int, password: str):
        self.conns = [psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, password=password,
                                       dbname="postgres", application_name="sqlrs changeset gate")
                      for _ in range(2)]
        self.pids = [conn.get_backend_pid() for conn in self.conns]
        self.holder = 0

    @property
    def cursor(self):
        return self.conns[self.holder].cursor()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()

    def release(self) -> None:
        for conn in self.conns:
            conn.rollback()

    def table_exists(self) -> bool:
        cursor = self.cursor
        cursor.execute("SELECT to_regclass('databasechangelog') IS NOT NULL")
        exists = cursor.fetchone()[0]
        self.conns[self.holder].rollback()
        return exists

    def lock(self) -> None:
        self.cursor.execute("LOCK TABLE databasechangelog IN SHARE MODE")

    def waiting(self) -> str | None:
        """The statement of another session waiting at the lock, if one is.

        Its text is read only once the wait is seen, in a statement of its own: read in the same
        statement as ``pg_locks``, the activity could be a copy taken a moment before, showing
        what that session ran before it began to wait (under load, a ``BEGIN`` in place of the
        changeset's row insert), and the boundary would be let through unforked."""
        cursor = self.cursor
        cursor.execute("SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'databasechangelog'::regclass "
                       "AND pid <> ALL(%s) LIMIT 1", (self.pids,))
        waiter = cursor.fetchone()
        if waiter is None:
            return None
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is otherwise kept per transaction
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", waiter)
        row = cursor.fetchone()
        return row[0] if row else ""

    def flush(self) -> None:
        """Put every committed change in the data files: build clusters commit asynchronously
        (``synchronous_commit = off``), so WAL still in memory would be missing from a fork."""
        self.cursor.execute("CHECKPOINT")

    def let_through(self) -> None:
        """Let the waiting statement through; returns once its transaction is over."""
        successor = 1 - self.holder
        queued = Background(lambda: self.conns[successor].cursor().execute(
            "LOCK TABLE databasechangelog IN SHARE MODE"))
        cursor = self.cursor
        while not queued.done.is_set():
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (self.pids[successor],))
            if cursor.fetchone()[0]:
                break
            time.sleep(0.001)
        self.conns[self.holder].commit()
        queued.done.wait()
        if queued.error is not None:
            raise queued.error
        self.holder = successor

    def newest_row_insert(self) -> str:
        """The newest changeset row, as an INSERT that writes it again elsewhere, byte for byte."""
        cursor = self.cursor
        cursor.execute("SELECT * FROM databasechangelog ORDER BY orderexecuted DESC LIMIT 1")
        row = cursor.fetchone()
        columns = ", ".join(f'"{d.name}"' for d in cursor.description)
        placeholders = ", ".join(["%s"] * len(row))
        return cursor.mogrify(f"INSERT INTO databasechangelog ({columns}) VALUES ({placeholders})", row).decode()


class Background:
    """A call on its own thread, whose result or error is kept for whoever joins it."""

    def __init__(self, call: Callable[[], object]):
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the joining thread
            self.error = exc
        finally:
            self.done.set()


class ForkSettler:
    """Turns forks into states on threads of its own: up to ``_SETTLERS`` forks are started,
    given their row, sealed and stopped at once (mostly waiting on processes), and their
    snapshots are committed and recorded one at a time, in order, so a state is recorded only
    after its parent and never after a fork before it failed."""

    def __init__(self, run: JobRun):
        self.run = run
        self.error: BaseException | None = None
        self.pool = ThreadPoolExecutor(max_workers=_SETTLERS, thread_name_prefix="fork-settler")
        self.work: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def submit(self, task: Task, volume_id: str, row_insert: str, started: float) -> None:
        sealed = self.pool.submit(self._seal, task, volume_id, row_insert)
        self.work.put((task, volume_id, sealed, started))

    def finish(self) -> None:
        self.work.put(None)
        self.thread.join()
        self.pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def _seal(self, task: Task, volume_id: str, row_insert: str) -> None:
        if self.error is None:
            seal_fork(self.run, task, volume_id, row_insert)

    def _loop(self) -> None:
        while (item := self.work.get()) is not None:
            task, volume_id, sealed, started = item
            try:
                sealed.result()
                if self.error is None:
                    self.run.commit_and_record(task, volume_id, started)
                    self.run.task_status(task, "succeeded")
            except BaseException as exc:
                self.error = self.error or exc
                log.warning("could not turn the fork for %s into its state: %s", task.task_id, exc)
            finally:
                self.run.release(volume_id)


def seal_fork(run: JobRun, task: Task, volume_id: str, row_insert: str) -> None:
    """A fork as its state is kept: recovered, the row Liquibase wrote in it, sealed, stopped."""
    ctx = run.ctx
    path = ctx.store.volume_path(run.org, volume_id)
    (pgdata_of(path) / "postmaster.pid").unlink(missing_ok=True)  # the running build server's
    endpoint = ctx.runtime.start(path, instances.instance_run_dir(ctx, volume_id), port=5432, listen_host=None,
                                 labels={"sqlrs.org": run.org, "sqlrs.job": run.job.job_id, "sqlrs.purpose": "build"})
    psql(run, endpoint, row_insert)
    seal(run, task, endpoint, reset_lock=True)
    ctx.runtime.stop(path, mode="fast")


def apply(run: JobRun, tasks: list[Task]) -> bool:
    """Build ``tasks`` (consecutive, uncached, each locked by this job) with one Liquibase;
    False, having changed nothing, when the changelog table does not exist and this job cannot
    create it as Liquibase would."""
    build = run.build_cluster_at(tasks[0].input_kind, tasks[0].input_id)
    if build.password is None:
        open_for_liquibase(run, build)
    gate = ChangelogGate(build.running.port, build.password or "")  # open_for_liquibase set it
    try:
        if not gate.table_exists() and not _create_changelog_tables(run, tasks[0], build):
            return False
        _run_behind_gate(run, tasks, build, gate)
        return True
    finally:
        gate.close()


def _create_changelog_tables(run: JobRun, task: Task, build: BuildCluster) -> bool:
    """On a cluster at the base: Liquibase's tables, created with the statements its ``update-sql``
    printed for them when this job planned (so the first changeset's row waits at the gate like
    any other). Liquibase finds them as it would have made them, and leaves them be. False when
    this process did not plan the job (a cached plan, a resumed job): nothing is created."""
    sql = run.scratch.pop(TABLES_SQL, None)
    if task.input_kind != "image" or not isinstance(sql, str):
        return False
    run.note(task, "liquibase: its tables created as its update-sql printed them")
    psql(run, build.running, sql)  # one transaction, as the superuser Liquibase connects as
    return True


def _run_behind_gate(run: JobRun, tasks: list[Task], build: BuildCluster, gate: ChangelogGate) -> None:
    ctx = run.ctx
    for task in tasks:
        task.cached = False
        task.save()
    command = dataclasses.replace(command_of(run), command="update-count", count=len(tasks), tag=None)
    run.note(tasks[0], f"liquibase: {len(tasks)} changesets in one run, a state at each")
    gate.lock()
    started = [time.monotonic()] * len(tasks)
    settler = ForkSettler(run)
    liquibase = Background(lambda: ctx.liquibase.run(  # stopped early if a fork cannot become its state
        command, connection(build), cwd=work_dir(run), cancel=lambda: run.cancelled() or settler.error is not None,
        timeout=ctx.settings.step_timeout_seconds * len(tasks), **confined(run)))
    done = 0  # changesets whose row Liquibase has written: tasks[:done]
    try:
        while not liquibase.done.wait(_POLL_SECONDS):
            statement = gate.waiting()
            if statement is None:
                continue
            if not _CHANGESET_ROW.match(statement) or done == len(tasks):
                gate.let_through()
                continue
            task, fork = tasks[done], None
            if done < len(tasks) - 1:  # the last one is snapshotted from the build cluster
                gate.flush()
                fork = run.new_volume()
                ctx.store.fork_volume(run.org, build.volume_id, fork)
            gate.let_through()
            done += 1
            if fork is not None:
                settler.submit(task, fork, gate.newest_row_insert(), started[done - 1])
            if done < len(tasks):
                started[done] = time.monotonic()
                run.task_status(tasks[done], "running")
                run.note(tasks[done], f"liquibase: {tasks[done].summary}")
    finally:
        gate.release()  # never leave Liquibase waiting on us
        liquibase.done.wait()
        try:
            if done == len(tasks) and settler.error is None:  # while the last forks settle
                _seal_build(run, tasks[-1], build)
        finally:
            settler.finish()
    if done == len(tasks):  # every row is written: even if Liquibase failed after that, all are kept
        run.commit_and_record(tasks[-1], build.volume_id, started[-1])
        if tasks[-1].status != "succeeded":
            run.task_status(tasks[-1], "succeeded")
        if liquibase.error is None:
            return
    failed = tasks[min(done, len(tasks) - 1)]  # the build cluster is past the last state: not kept
    if isinstance(liquibase.error, CommandFailed):
        message = liquibase_message(liquibase.error)
        run.note(failed, message)
        raise StepFailed.of_command(f"step {failed.task_id} ({failed.summary})", liquibase.error, message,
                                    failed.task_id) from None
    if liquibase.error is not None:
        raise liquibase.error
    raise StepFailed(f"step {failed.task_id}: liquibase stopped after {done} of {len(tasks)} changesets",
                     {"task_id": failed.task_id})


def _seal_build(run: JobRun, task: Task, build: BuildCluster) -> None:
    """The last changeset's state is the build cluster itself: sealed and stopped."""
    seal(run, task, build.running)
    build.password = None
    run.ctx.runtime.stop(build.path, mode="fast")
    build.endpoint = None
