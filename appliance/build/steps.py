"""Prepare kinds on the worker side: how a step of each kind runs on the build cluster, behind
one Protocol. The twin of ``appliance.orchestrator.kinds`` (admission); the job's run
(``job``) never branches on the kind.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from appliance.build.liquibase import LiquibaseSteps
from appliance.build.psql_steps import PsqlSteps
from appliance.control.models import Task
from appliance.errors import InternalError

if TYPE_CHECKING:  # the run is what calls a kind: the kinds see it through its type only
    from appliance.build.job import BuildCluster, JobRun


class StepKind(Protocol):
    name: str  # the job's ``prepare_kind``
    over_tcp: bool  # its client reaches the build cluster over TCP with a password (JDBC), not the socket

    def opened(self, run: JobRun, build: BuildCluster) -> None:
        """The build cluster has just started: make it ready for this kind's client."""

    def task_handlers(self) -> Mapping[str, Callable[[JobRun, Task], None]]:
        """The kind's own task types (e.g. planning on a worker), by type."""

    def batch(self, run: JobRun, task: Task) -> list[Task]:
        """Uncached steps from ``task`` on that one run of the tool may build together; [] for one at a time."""

    def apply_batch(self, run: JobRun, tasks: list[Task]) -> bool:
        """Build ``tasks`` in one run; False when the batch could not start (the caller goes one by one)."""

    def apply(self, run: JobRun, task: Task, build: BuildCluster, step: dict) -> None:
        """Run one step on the build cluster, which is at the step's input; its state is
        committed by the caller."""


KINDS: dict[str, StepKind] = {kind.name: kind for kind in (PsqlSteps(), LiquibaseSteps())}


def step_kind(name: str) -> StepKind:
    if name not in KINDS:
        raise InternalError(f"a job of an unknown prepare_kind {name!r}")
    return KINDS[name]
