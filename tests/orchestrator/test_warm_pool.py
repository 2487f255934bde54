"""Which states the warm pool keeps clones of, against a real Control DB."""
from __future__ import annotations

from appliance.control.models import PrepareJob, State, utcnow
from appliance.orchestrator import warm_pool
from appliance.orchestrator.submit import submit_prepare

REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def handed_out(ctx, state_id: str) -> None:
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="succeeded", finished_at=utcnow(), result_state_id=state_id,
                      result_instance_id="i" * 32).where(PrepareJob.job_id == job.job_id).execute()


def test_a_state_stays_hot_after_its_instance_was_deleted_right_away(ctx):
    State.create(org="default", state_id="s" * 64, image_id="img", prepare_kind="psql", task_hash="t",
                 size_bytes=1, host=ctx.host)
    handed_out(ctx, "s" * 64)  # and no Instance row left: the client deleted it at once
    assert [s.state_id for s in warm_pool.hot_states(ctx)] == ["s" * 64]


def test_the_most_demanded_states_come_first(ctx):
    for state_id, demand in (("a" * 64, 1), ("b" * 64, 3)):
        State.create(org="default", state_id=state_id, image_id="img", prepare_kind="psql", task_hash="t",
                     size_bytes=1, host=ctx.host)
        for _ in range(demand):
            handed_out(ctx, state_id)
    assert [s.state_id for s in warm_pool.hot_states(ctx)] == ["b" * 64, "a" * 64]
