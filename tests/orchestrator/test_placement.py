"""Placement across hosts, against a real Control DB and Redis (hosts are registry rows here;
tests/e2e/test_two_hosts.py runs two real appliances)."""
from __future__ import annotations

import datetime as dt

import pytest

from appliance.control.models import Host, PrepareJob, State, Task, utcnow
from appliance.errors import NotFound
from appliance.orchestrator import hosts
from appliance.orchestrator.placement import import_choice, place
from appliance.orchestrator.queue import prepare_queue
from appliance.orchestrator.reconciler import reconcile
from appliance.orchestrator.submit import submit_prepare

CHAIN = ["a" * 64, "b" * 64, "c" * 64]


def register(host_id: str, *, heartbeat_age: float = 0.0) -> None:
    Host.create(host_id=host_id, storage_driver="copy", runtime="process", port_min=7000, port_max=7099,
                instance_host="127.0.0.1", heartbeat_at=utcnow() - dt.timedelta(seconds=heartbeat_age))


def hold(host_id: str, *state_ids: str, build_seconds: float | None = 10.0, exported: bool = False,
         size: int = 1024) -> None:
    parent = None
    for state_id in CHAIN:
        if state_id in state_ids:
            State.create(org="default", state_id=state_id, parent_state_id=parent, image_id="img",
                         prepare_kind="psql", task_hash="t", size_bytes=size, host=host_id,
                         build_seconds=build_seconds, exported_at=utcnow() if exported else None)
        parent = state_id


def test_a_prepare_goes_to_the_host_with_the_longest_cached_prefix(ctx):
    register("a"), register("b")
    hold("a", CHAIN[0])
    hold("b", CHAIN[0], CHAIN[1])
    placement = place(ctx, "default", CHAIN)
    assert (placement.host_id, placement.cached_steps) == ("b", 2)


def test_a_later_state_without_its_ancestors_is_no_prefix(ctx):
    register("a"), register("b")
    hold("a", CHAIN[0])
    hold("b", CHAIN[1], CHAIN[2])
    assert place(ctx, "default", CHAIN).host_id == "a"


def test_a_drained_host_is_never_chosen_whatever_it_holds(ctx):
    register("a"), register("b")
    hold("b", *CHAIN)
    hosts.set_drained("b", True, "disk swap")
    placement = place(ctx, "default", CHAIN)
    assert placement.host_id == "a" and placement.cached_steps == 0
    assert "b hold(s) more but take no work now" in placement.reason


def test_a_host_whose_heartbeat_is_stale_is_down(ctx):
    register("a"), register("b", heartbeat_age=ctx.settings.host_down_after_seconds + 1)
    hold("b", *CHAIN)
    assert place(ctx, "default", CHAIN).host_id == "a"
    assert {h["host_id"]: h["status"] for h in (hosts.describe(h, ctx.settings) for h in hosts.all_hosts())} \
        == {"a": "up", "b": "down"}


def test_equal_prefixes_go_to_the_host_with_fewer_jobs_in_flight(ctx):
    register("a"), register("b")
    submit_prepare(ctx, "default", {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "x"]})
    busy = PrepareJob.get().host_id
    assert place(ctx, "default", CHAIN).host_id == ({"a", "b"} - {busy}).pop()


def test_with_no_host_registered_the_admitting_host_takes_the_job(ctx):
    assert place(ctx, "default", CHAIN).host_id == ctx.host


def test_a_job_is_queued_on_its_hosts_queue_and_says_where_it_went(ctx, redis):
    register("a"), register("b")
    job = submit_prepare(ctx, "default", {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "x"]})
    assert job.job_id in prepare_queue(redis, job.host_id).job_ids
    assert job.job_id not in prepare_queue(redis, ({"a", "b"} - {job.host_id}).pop()).job_ids


def test_cached_flags_describe_the_chosen_hosts_copies(ctx):
    register("a"), register("b")
    request = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}
    job = submit_prepare(ctx, "default", dict(request))
    step = Task.get((Task.job == job) & (Task.type == "state_execute"))
    hold_other = ({"a", "b"} - {job.host_id}).pop()
    State.create(org="default", state_id=step.output_state_id, image_id="img", prepare_kind="psql",
                 task_hash="t", host=hold_other)
    again = submit_prepare(ctx, "default", dict(request))
    again_step = Task.get((Task.job == again) & (Task.type == "state_execute"))
    assert again.host_id == hold_other and again_step.cached is True


def test_draining_an_unknown_host_names_the_known_ones(ctx):
    register("a")
    with pytest.raises(NotFound, match=r"known hosts: a"):
        hosts.set_drained("nope", True)


def test_a_queued_job_on_a_drained_host_is_placed_again(ctx, redis):
    register("a"), register("b")
    job = submit_prepare(ctx, "default", {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "x"]})
    gone = job.host_id
    hosts.set_drained(gone, True)
    report = reconcile(ctx)
    moved = PrepareJob.get_by_id(job.job_id)
    assert report.replaced_jobs == [job.job_id] and moved.host_id != gone
    assert job.job_id in prepare_queue(redis, moved.host_id).job_ids


# -- import or rebuild -----------------------------------------------------------------------
def test_importing_is_chosen_when_the_stream_is_cheaper_than_the_build(ctx):
    hold("b", *CHAIN, build_seconds=30.0, exported=True, size=100 * 1024**2)
    choice = import_choice(ctx, "default", CHAIN)
    assert choice.state_id == CHAIN[-1] and choice.steps == 3 and choice.cheaper
    assert choice.import_seconds == pytest.approx(3 * (1.0 + 0.5))  # 100 MiB at 100 MiB/s, + overhead
    assert choice.build_seconds == 90.0


def test_rebuilding_is_chosen_when_the_steps_were_quick_to_build(ctx):
    hold("b", *CHAIN, build_seconds=0.2, exported=True)
    assert not import_choice(ctx, "default", CHAIN).cheaper


def test_only_an_unbroken_run_of_exported_states_can_be_imported(ctx):
    hold("b", CHAIN[0], build_seconds=60.0, exported=True)
    hold("b", CHAIN[1], build_seconds=60.0, exported=False)
    hold("b", CHAIN[2], build_seconds=60.0, exported=True)
    choice = import_choice(ctx, "default", CHAIN)
    assert choice.state_id == CHAIN[0] and choice.steps == 1 and choice.cheaper


def test_a_state_never_built_anywhere_cannot_be_imported(ctx):
    assert import_choice(ctx, "default", CHAIN) is None
