"""`cache explain`: would this prepare be a cache hit, and if not, exactly why not.

Read-only: it plans the request like admission does and looks states up; it creates no
job, no instance and touches no state's use counters.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from appliance.context import AppContext
from appliance.control.models import State
from appliance.orchestrator.kinds import kind_of
from appliance.orchestrator.placement import held_by_host, place
from appliance.orchestrator.submit import plan_prepare


def explain_prepare(ctx: AppContext, org: str, request: dict[str, Any]) -> dict[str, Any]:
    planned = plan_prepare(ctx, org, request)
    kind = kind_of(planned.kind)
    chained = kind.steps_for_job(planned, "explain")  # a step keyed by its job is never cached
    if chained is None:
        return {"decision": "unknown", "reason_code": kind.unplanned_reason, "signature": planned.signature,
                "resolved_image_id": planned.resolved_image, "matched_state_id": None, "host": None, "steps": []}
    planned = replace(planned, steps=chained)
    steps = [(f"execute-{n}", step.summary, step.task_hash) for n, step in enumerate(chained)]
    host = place(ctx, org, planned.state_ids).host_id
    present = held_by_host(org, planned.state_ids, [host]).get(host, set())
    cached_prefix = 0
    while cached_prefix < len(planned.state_ids) and planned.state_ids[cached_prefix] in present:
        cached_prefix += 1
    if cached_prefix == len(planned.state_ids):
        decision, reason = "hit", "exact_state_match"
    elif cached_prefix > 0:
        decision, reason = "miss", f"step_changed:{cached_prefix}"
    else:
        decision, reason = "miss", _first_step_miss_reason(org, planned.resolved_image, steps[0][2])
    return {
        "decision": decision, "reason_code": reason, "signature": planned.signature,
        "resolved_image_id": planned.resolved_image,
        "matched_state_id": planned.state_ids[cached_prefix - 1] if cached_prefix else None, "host": host,
        "steps": [{"task_id": task_id, "summary": summary, "state_id": state_id,
                   "cached": state_id in present and index < cached_prefix}
                  for index, ((task_id, summary, _), state_id) in enumerate(zip(steps, planned.state_ids))],
    }


def _first_step_miss_reason(org: str, image: str, first_task_hash: str) -> str:
    """The same first step was built before, but on another image: the image is what changed."""
    same_step_other_image = State.select().where(
        (State.org == org) & State.parent_state_id.is_null() & (State.task_hash == first_task_hash)
        & (State.image_id != image)).exists()
    return "image_changed" if same_step_other_image else "no_matching_state"
