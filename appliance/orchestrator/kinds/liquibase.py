"""Liquibase requests at admission.

Which changesets are pending is Liquibase's to say, on a cluster at the base: the first job for
a request plans them itself (its ``plan-liquibase`` task); a repeated request finds them in the
plan cache and gets its steps here, like a psql request.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from appliance.context import AppContext
from appliance.control.models import PrepareJob
from appliance.errors import ApplianceError, InvalidArgument
from appliance.orchestrator.kinds.base import PlannedPrepare, Target
from appliance.orchestrator.liquibase_plans import cached_plan
from appliance.planning.hashing import digest
from appliance.planning.liquibase.args import LiquibaseCommand, parse_liquibase_args
from appliance.planning.liquibase.plans import PlannedChangeset, chain, plan_key
from appliance.planning.steps import PlannedStep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownLiquibasePlan:
    """The changesets a request's plan found in the cache, with what keys their states."""

    command: LiquibaseCommand
    version: str
    changesets: list[PlannedChangeset]


class LiquibaseKind:
    name = "lb"
    unplanned_reason = "liquibase_not_planned"  # only Liquibase can say, and explaining runs nothing

    def plan(self, ctx: AppContext, request: dict[str, Any], target: Target) -> PlannedPrepare:
        if request.get("psql_args") or request.get("stdin") is not None:
            raise InvalidArgument("prepare_kind 'lb' takes liquibase_args, not psql_args or stdin")
        command = parse_liquibase_args(list(request.get("liquibase_args") or []))
        source = target.source
        if source is None:
            raise InvalidArgument("prepare_kind 'lb' needs a source: the bundle or project holding the changelog")
        changelog = (target.root / target.work_dir / command.changelog_file).resolve()
        if not changelog.is_relative_to(target.root.resolve()) or not changelog.is_file():
            raise InvalidArgument(f"changelog {command.changelog_file} is not in the source "
                                  f"(work_dir {target.work_dir})", {"changelog_file": command.changelog_file})
        signature = digest(("kind", self.name), ("image", target.resolved_image), ("source", source.source_id),
                           ("work_dir", target.work_dir), *(("arg", a) for a in command.argv()))
        known = _known_plan(ctx, target, source.source_id, command)
        return PlannedPrepare(self.name, target.resolved_image, source.source_id, target.work_dir, signature,
                              None, known)

    def steps_for_job(self, planned: PlannedPrepare, job_id: str) -> list[PlannedStep] | None:
        """Volatile changesets are keyed by the job: the steps are known only once it has an id."""
        known: KnownLiquibasePlan | None = planned.detail
        if known is None:
            return None
        return chain(known.changesets, image=planned.resolved_image, command=known.command,
                     version=known.version, job_id=job_id)

    def plan_summary(self, steps: list[PlannedStep] | None) -> str:
        if steps is None:
            return "Liquibase plans on a cluster at the base"
        return f"{len(steps)} changeset(s), from the plan cache"

    def worker_planning_rows(self, job: PrepareJob, first_position: int) -> list[dict[str, Any]]:
        """The steps (one per changeset) and the instance are added by the plan-liquibase task."""
        return [{"job": job, "task_id": "plan-liquibase", "position": first_position, "type": "plan_liquibase",
                 "status": "queued", "input_kind": "image", "input_id": job.resolved_image_id,
                 "summary": "liquibase update-sql"}]


def _known_plan(ctx: AppContext, target: Target, source_id: str,
                command: LiquibaseCommand) -> KnownLiquibasePlan | None:
    try:
        version = ctx.liquibase.version()
    except ApplianceError as exc:  # no Liquibase next to the API: the worker plans, as the first time
        log.debug("no plan cache lookup: %s", exc)
        return None
    key = plan_key(image=target.resolved_image, source_id=source_id, work_dir=target.work_dir, command=command,
                   version=version)
    changesets = cached_plan(target.org, key)
    return None if changesets is None else KnownLiquibasePlan(command, version, changesets)
