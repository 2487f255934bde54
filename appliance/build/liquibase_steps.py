"""prepare:lb inside a job: plan the changesets on a cluster at the base, then apply them one by
one, each becoming a state.

A changeset's state is keyed by its parent state and by what the changeset leaves in the
database (see :func:`liquibase_plans.chain`). The first ``runAlways``/``runOnChange`` changeset
ends the cacheable prefix: its state and every later one are keyed by the job too, so they are
built every time and never handed to another job (Liquibase would run them again, or
differently).
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.control.models import Task
from appliance.errors import CommandFailed, StepFailed
from appliance.liquibase_runners.base import Connection
from appliance.orchestrator.liquibase_plans import remember_plan
from appliance.orchestrator.tasks import insert_tasks, step_rows
from appliance.planning.liquibase.args import LiquibaseCommand, parse_liquibase_args
from appliance.planning.liquibase.changelogs import read_entry
from appliance.planning.liquibase.plans import PlannedChangeset, chain, plan_key
from appliance.planning.liquibase.update_sql import Changeset, changelog_tables_sql, parse_update_sql
from appliance.runtime.base import SUPERUSER, Endpoint
from appliance.sources import local_source_root

if TYPE_CHECKING:
    from appliance.build.job import BuildCluster, JobRun


# In ``JobRun.scratch``: how Liquibase creates its tables, from this job's plan (see ``liquibase_batch``)
TABLES_SQL = "liquibase_tables_sql"


def command_of(run: JobRun) -> LiquibaseCommand:
    return parse_liquibase_args(json.loads(run.job.request_json)["liquibase_args"])


def work_dir(run: JobRun) -> Path:
    return (local_source_root(run.ctx, run.org, run.job.source_id) / run.job.work_dir).resolve()


def confined(run: JobRun) -> dict:
    """Liquibase runs as the org's OS identity and sees the job's source only."""
    return {"run_as": run.ctx.identity_of(run.org),
            "source": local_source_root(run.ctx, run.org, run.job.source_id).resolve()}


def connection(build: BuildCluster) -> Connection:
    return Connection(f"jdbc:postgresql://127.0.0.1:{build.running.port}/postgres", SUPERUSER, build.password)


def open_for_liquibase(run: JobRun, build: BuildCluster) -> None:
    """A build cluster Liquibase can reach: JDBC needs TCP and a password. The password lives
    only as long as the cluster runs; it is removed before any snapshot (see :func:`apply`)."""
    build.password = secrets.token_urlsafe(24)
    run.ctx.runtime.set_password(build.running, build.password)


def plan(run: JobRun, task: Task) -> None:
    """``update-sql`` on a cluster at the base; one ``state_execute`` task per changeset."""
    ctx, job = run.ctx, run.job
    command, cwd = command_of(run), work_dir(run)
    version = ctx.liquibase.version()
    build = run.build_cluster_at("image", job.resolved_image_id)
    run.note(task, f"liquibase {version} {ctx.liquibase.where}: update-sql {command.changelog_file}")
    try:
        output = ctx.liquibase.run(command, connection(build), cwd=cwd, sql_only=True, cancel=run.cancelled,
                                   timeout=ctx.settings.step_timeout_seconds, **confined(run)).stdout
    except CommandFailed as exc:
        raise StepFailed.of_command(f"liquibase planning {command.changelog_file}", exc, liquibase_message(exc),
                                    task.task_id) from None
    changesets = parse_update_sql(output)
    run.scratch[TABLES_SQL] = changelog_tables_sql(output)
    if not changesets:
        raise StepFailed(f"liquibase has no changeset to apply from {command.changelog_file}",
                         {"task_id": task.task_id})
    roots = [cwd, *(cwd / p for p in command.search_path)]
    planned, volatile = [], False
    for changeset in changesets:
        entry = read_entry(roots, changeset)
        volatile = volatile or entry.volatile
        planned.append(PlannedChangeset(changeset, volatile, entry.preconditions))
    remember_plan(run.org, plan_key_of(run, command, version), source_id=job.source_id, version=version,
                  planned=planned)
    steps = chain(planned, image=job.resolved_image_id, command=command, version=version, job_id=job.job_id)
    rows = step_rows(job, steps, first_position=task.position + 1, exists=run.state_exists)
    insert_tasks(rows)
    run.note(task, planned_message(len(steps), sum(1 for r in rows if r.get("cached")), volatile))


def plan_key_of(run: JobRun, command: LiquibaseCommand, version: str) -> str:
    job = run.job
    return plan_key(image=job.resolved_image_id, source_id=job.source_id, work_dir=job.work_dir,
                    command=command, version=version)


def planned_message(changesets: int, cached: int, volatile: bool) -> str:
    return (f"liquibase: {changesets} changeset(s), {cached} cached"
            + (", the cacheable prefix ends at a runAlways/runOnChange changeset" if volatile else ""))


def apply(run: JobRun, task: Task, build: BuildCluster, step: dict) -> None:
    """``update-count --count=1``: exactly the next pending changeset, which the plan says is
    this step's; then the build password goes, before the cluster is stopped and snapshotted."""
    ctx = run.ctx
    changeset = Changeset(**step["changeset"])
    one = dataclasses.replace(command_of(run), command="update-count", count=1, tag=None)
    if build.password is None:
        open_for_liquibase(run, build)
    run.note(task, f"liquibase: {changeset.name}")
    try:
        result = ctx.liquibase.run(one, connection(build), cwd=work_dir(run), cancel=run.cancelled,
                                   timeout=ctx.settings.step_timeout_seconds, **confined(run))
    except CommandFailed as exc:
        message = liquibase_message(exc)
        run.note(task, message)
        raise StepFailed.of_command(f"step {task.task_id} ({changeset.name})", exc, message, task.task_id) from None
    if output := (result.stdout + result.stderr).strip():
        run.note(task, output[-4000:])
    seal(run, task, build.running)
    build.password = None


def seal(run: JobRun, task: Task, endpoint: Endpoint, *, reset_lock: bool = False) -> None:
    """Before a Liquibase step's cluster is stopped and snapshotted: check that the changeset
    Liquibase recorded last is the one the plan gave this step, release Liquibase's lock (held
    in a copy taken while it ran) and remove the build password."""
    changeset = Changeset(**json.loads(task.step_json)["changeset"])
    applied = _last_applied(run, endpoint)
    if applied != _expected(changeset, applied):
        raise StepFailed(f"step {task.task_id}: liquibase applied {_describe(applied)}, but the plan says "
                         f"{changeset.name} ({changeset.checksum}); the changelog reads differently now "
                         "(a property, include or file outside the source?)", {"task_id": task.task_id})
    unlock = "UPDATE databasechangeloglock SET locked = FALSE, lockgranted = NULL, lockedby = NULL; "
    psql(run, endpoint, (unlock if reset_lock else "") + f'ALTER ROLE "{SUPERUSER}" PASSWORD NULL')


_FIELD_SEPARATOR = "\x1f"


def _last_applied(run: JobRun, endpoint: Endpoint) -> tuple[str, ...] | None:
    """(path, id, author, checksum) of the changeset Liquibase recorded last."""
    out = psql(run, endpoint, "SELECT filename, id, author, coalesce(md5sum, '') FROM databasechangelog "
                            "ORDER BY orderexecuted DESC LIMIT 1", "-At", "-F", _FIELD_SEPARATOR).stdout
    line = out.rstrip("\n")
    return tuple(line.split(_FIELD_SEPARATOR)) if line else None


def _expected(changeset: Changeset, applied: tuple[str, ...] | None) -> tuple[str, ...]:
    """What the plan says was applied; a plan without a checksum takes whatever Liquibase wrote."""
    checksum = changeset.checksum if changeset.checksum is not None else (applied or ("",) * 4)[3]
    return (changeset.path, changeset.id, changeset.author, checksum)


def _describe(applied: tuple[str, ...] | None) -> str:
    return "nothing" if applied is None else f"{'::'.join(applied[:3])} ({applied[3] or 'no checksum'})"


def psql(run: JobRun, endpoint: Endpoint, sql: str, *options: str):
    runtime = run.ctx.runtime
    return run.ctx.runner(runtime.psql_command(endpoint) + ["-q", "-v", "ON_ERROR_STOP=1", *options, "-c", sql],
                          env=runtime.command_env(), cwd="/", run_as=run.ctx.identity_of(run.org))


def liquibase_message(exc: CommandFailed) -> str:
    """Liquibase's own words: its error lines, else the end of what it printed."""
    text = f"{exc.stdout}\n{exc.stderr}"
    errors = [line.strip() for line in text.splitlines()
              if "ERROR" in line or "Unexpected error running Liquibase" in line or "Reason:" in line]
    return "\n".join(dict.fromkeys(errors))[:4000] or text.strip()[-2000:] or f"liquibase exited with {exc.returncode}"
