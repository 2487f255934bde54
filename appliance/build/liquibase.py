"""prepare:lb inside a job, as a step kind: planning on a worker (``liquibase_steps.plan``), one
changeset at a time (``liquibase_steps.apply``) or several in one Liquibase run
(``liquibase_batch``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from appliance.build import liquibase_batch, liquibase_steps
from appliance.control.models import Task

if TYPE_CHECKING:
    from appliance.build.job import BuildCluster, JobRun


class LiquibaseSteps:
    name = "lb"
    over_tcp = True  # JDBC cannot use the socket

    def opened(self, run: JobRun, build: BuildCluster) -> None:
        liquibase_steps.open_for_liquibase(run, build)

    def task_handlers(self) -> Mapping[str, Callable[[JobRun, Task], None]]:
        return {"plan_liquibase": liquibase_steps.plan}

    def batch(self, run: JobRun, task: Task) -> list[Task]:
        return liquibase_batch.batch_of(run, task)

    def apply_batch(self, run: JobRun, tasks: list[Task]) -> bool:
        return liquibase_batch.apply(run, tasks)

    def apply(self, run: JobRun, task: Task, build: BuildCluster, step: dict) -> None:
        liquibase_steps.apply(run, task, build, step)
