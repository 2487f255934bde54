"""`cache explain`: would this prepare be a cache hit, and if not, exactly why not.

Read-only: it plans the request like admission does and looks states up; it creates no
job, no instance and touches no state's use counters.
"""
from __future__ import annotations

from typing import Any

from ..context import AppContext
from ..control.models import State
from .placement import held_by_host, place
from .submit import plan_prepare


def explain_prepare(ctx: AppContext, org: str, request: dict[str, Any]) -> dict[str, Any]:
    planned = plan_prepare(ctx, org, request)
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
        decision, reason = "miss", _first_step_miss_reason(org, planned)
    return {
        "decision": decision, "reason_code": reason, "signature": planned.signature,
        "resolved_image_id": planned.resolved_image,
        "matched_state_id": planned.state_ids[cached_prefix - 1] if cached_prefix else None, "host": host,
        "steps": [{"task_id": f"execute-{step.index}", "summary": step.summary, "state_id": state_id,
                   "cached": state_id in present and index < cached_prefix}
                  for index, (step, state_id) in enumerate(zip(planned.steps, planned.state_ids))],
    }


def _first_step_miss_reason(org: str, planned) -> str:
    """The same first step was built before, but on another image: the image is what changed."""
    same_step_other_image = State.select().where(
        (State.org == org) & State.parent_state_id.is_null() & (State.task_hash == planned.steps[0].task_hash)
        & (State.image_id != planned.resolved_image)).exists()
    return "image_changed" if same_step_other_image else "no_matching_state"
