"""The Protocol every kind of prepare implements at admission, and what it plans."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.context import AppContext
from appliance.control.models import PrepareJob
from appliance.planning.steps import PlannedStep
from appliance.sources import ResolvedSource


@dataclass(frozen=True)
class Target:
    """What every request has, checked before its kind sees it: the org, the resolved image
    and the source the steps run in."""

    org: str
    resolved_image: str
    source: ResolvedSource | None
    root: Path  # the source's root on this host (a fresh empty one without a source)
    work_dir: str


@dataclass(frozen=True)
class PlannedPrepare:
    """Everything admission derives from a request, before anything is written."""

    kind: str
    resolved_image: str
    source_id: str | None
    work_dir: str
    signature: str  # the request's identity, for deduplication and reports
    steps: list[PlannedStep] | None  # None: a worker plans them (see PrepareKind.steps_for_job)
    detail: Any = None  # the kind's own, for steps_for_job

    @property
    def state_ids(self) -> list[str]:
        return [step.state_id for step in self.steps or []]


class PrepareKind(Protocol):
    name: str  # the request's ``prepare_kind``
    unplanned_reason: str  # ``cache explain``'s reason code when only a worker can plan

    def plan(self, ctx: AppContext, request: dict[str, Any], target: Target) -> PlannedPrepare:
        """Validate the kind's part of a request (a 4xx error for anything a client got wrong)
        and plan it as far as admission can, running nothing."""

    def steps_for_job(self, planned: PlannedPrepare, job_id: str) -> list[PlannedStep] | None:
        """The job's steps (a step may be keyed by its job), or None when a worker must plan."""

    def plan_summary(self, steps: list[PlannedStep] | None) -> str:
        """The ``plan`` task's summary."""

    def worker_planning_rows(self, job: PrepareJob, first_position: int) -> list[dict[str, Any]]:
        """The task rows by which a worker plans a job whose steps admission could not know."""
