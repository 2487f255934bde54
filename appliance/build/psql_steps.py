"""prepare:psql inside a job: each step is one psql run on the build cluster's socket."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from appliance.build.out_of_space import out_of_space, store_exhausted
from appliance.control.models import Task
from appliance.errors import CommandFailed, StepFailed
from appliance.shell import child_env
from appliance.sources import local_source_root

if TYPE_CHECKING:
    from appliance.build.job import BuildCluster, JobRun


class PsqlSteps:
    name = "psql"
    over_tcp = False  # psql reaches the build cluster through its socket

    def opened(self, run: JobRun, build: BuildCluster) -> None:
        pass

    def task_handlers(self) -> Mapping[str, Callable[[JobRun, Task], None]]:
        return {}

    def batch(self, run: JobRun, task: Task) -> list[Task]:
        return []

    def apply_batch(self, run: JobRun, tasks: list[Task]) -> bool:
        return False

    def apply(self, run: JobRun, task: Task, build: BuildCluster, step: dict) -> None:
        """psql runs as the org's OS identity, in a sandbox that holds only the job's source
        (read-only) and the build cluster's socket directory, with no network."""
        ctx = run.ctx
        argv = ctx.runtime.psql_command(build.running) + list(step["argv"])
        source = local_source_root(ctx, run.org, run.job.source_id)
        cwd = (source / run.job.work_dir).resolve()
        sandbox = ctx.sandbox
        argv = sandbox.client(argv, cwd=cwd, read_only=[source, build.run_dir])
        run.note(task, f"psql: {step['summary']}")
        env = child_env(lang="C.UTF-8", home="/tmp" if sandbox.enabled else str(build.run_dir),
                        PGAPPNAME="sqlrs-build")
        try:
            result = ctx.runner(argv, input=step.get("stdin"), env=env, cwd="/" if sandbox.enabled else cwd,
                                run_as=ctx.identity_of(run.org), cancel=run.cancelled,
                                timeout=ctx.settings.step_timeout_seconds)
        except CommandFailed as exc:
            message = exc.stderr.strip() or exc.stdout.strip() or f"psql exited with {exc.returncode}"
            run.note(task, message)
            if full := out_of_space(exc) or store_exhausted(ctx.store, message):
                raise full from None
            raise StepFailed.of_command(f"step {task.task_id} ({step['summary']})", exc, message,
                                        task.task_id) from None
        output = (result.stdout + result.stderr).strip()
        if output:
            run.note(task, output)
