"""psql requests at admission: every step is known from the request and its files."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from appliance.context import AppContext
from appliance.control.models import PrepareJob
from appliance.errors import InternalError
from appliance.orchestrator.kinds.base import PlannedPrepare, Target
from appliance.planning.hashing import chain_state_ids, digest
from appliance.planning.psql.plan import plan_psql
from appliance.planning.steps import PlannedStep


class PsqlKind:
    name = "psql"
    unplanned_reason = ""  # a psql request is always planned at admission

    def plan(self, ctx: AppContext, request: dict[str, Any], target: Target) -> PlannedPrepare:
        plan = plan_psql(list(request.get("psql_args") or []), root=target.root, work_dir=target.work_dir,
                         stdin=request.get("stdin"))
        state_ids = chain_state_ids(target.resolved_image, [step.task_hash for step in plan.steps])
        signature = digest(("kind", self.name), ("image", target.resolved_image),
                           *(("task", step.task_hash) for step in plan.steps))
        steps = [PlannedStep(step.task_hash, state_id, step.summary, asdict(step))
                 for step, state_id in zip(plan.steps, state_ids)]
        return PlannedPrepare(self.name, target.resolved_image, target.source.source_id if target.source else None,
                              target.work_dir, signature, steps)

    def steps_for_job(self, planned: PlannedPrepare, job_id: str) -> list[PlannedStep] | None:
        return planned.steps

    def plan_summary(self, steps: list[PlannedStep] | None) -> str:
        return f"{len(steps or [])} step(s)"

    def worker_planning_rows(self, job: PrepareJob, first_position: int) -> list[dict[str, Any]]:
        raise InternalError("a psql job is planned at admission")
