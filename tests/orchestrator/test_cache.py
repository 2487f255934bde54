"""The bounded cache on a real Control DB and a real store: only unreferenced LRU leaves go."""
from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest

from appliance.control.models import CacheEviction, Instance, State, utcnow
from appliance.errors import CacheFullUnreclaimable
from appliance.orchestrator import cache
from appliance.orchestrator.explain import explain_prepare


@pytest.fixture
def bounded(ctx):
    """A cache capped at 1000 bytes of states, evicting above 90% down to 50%, no age limit."""
    ctx.settings = ctx.settings.model_copy(update={
        "cache_max_bytes": 1000, "cache_high_watermark": 0.9, "cache_low_watermark": 0.5,
        "cache_reserve_bytes": 0, "cache_min_state_age_seconds": 600})
    return ctx


def make_state(ctx, name: str, *, parent: str | None = None, size: int = 100, age: int = 3600,
               used_ago: int = 3600) -> str:
    state_id = (name * 64)[:64] if len(name) == 1 else name
    volume = secrets.token_hex(16)
    path = ctx.store.create_volume("default", volume)
    (path / "data").write_bytes(b"x" * 10)
    ctx.store.commit_state("default", volume, state_id)
    ctx.store.destroy_volume("default", volume)
    now = utcnow()
    State.create(org="default", state_id=state_id, parent_state_id=parent, image_id="postgres:15@sha256:x",
                 prepare_kind="psql", task_hash="t" + state_id[:10], size_bytes=size, host=ctx.host,
                 created_at=now - dt.timedelta(seconds=age), last_used_at=now - dt.timedelta(seconds=used_ago))
    return state_id


def present(ctx) -> set[str]:
    return {s.state_id for s in State.select()}


def test_no_eviction_happens_without_pressure(bounded, redis):
    make_state(bounded, "a", size=100)
    assert cache.evict(bounded, trigger="test") is None
    assert len(present(bounded)) == 1


def test_eviction_frees_least_recently_used_unreferenced_leaves_only(bounded, redis):
    root = make_state(bounded, "r", size=300, used_ago=9000)
    child = make_state(bounded, "c", parent=root, size=300, used_ago=8000)  # the LRU leaf
    with_instance = make_state(bounded, "i", size=150, used_ago=9999)
    young = make_state(bounded, "y", size=200, age=5, used_ago=9999)
    Instance.create(instance_id="ab" * 16, org="default", state_id=with_instance, image_id="x", volume_id="cd" * 16,
                    host_id=bounded.host, status="active", host="127.0.0.1", port=1, password="p", expires_at=utcnow())
    record = cache.evict(bounded, trigger="test")  # usage 950 > 90% of 1000: evict down to 500
    assert [e["state_id"] for e in json.loads(record.evicted_json)] == [child, root]
    assert present(bounded) == {with_instance, young}
    assert not bounded.store.has_state("default", child) and not bounded.store.has_state("default", root)
    assert record.freed_bytes == 600 and record.usage_bytes_before == 950 and record.usage_bytes_after == 350


def test_a_parent_is_only_evicted_after_its_child(bounded, redis):
    root = make_state(bounded, "r", size=400, used_ago=99999)  # least recently used, but not a leaf
    child = make_state(bounded, "c", parent=root, size=300, used_ago=10)
    other = make_state(bounded, "o", size=250, used_ago=5000)
    record = cache.evict(bounded, trigger="test")  # 950 → at most 500
    assert [e["state_id"] for e in json.loads(record.evicted_json)] == [other, child]
    assert present(bounded) == {root}


def test_a_build_fails_with_cache_full_unreclaimable_when_nothing_can_go(bounded, redis):
    make_state(bounded, "y", size=1000, age=5)  # at the cap, and too young to evict
    with pytest.raises(CacheFullUnreclaimable) as error:
        cache.ensure_room(bounded)
    assert error.value.details["reasons"] == ["usage_above_high_watermark"]
    assert error.value.details["blocked_count"] == 1


def test_status_reports_pressure_reclaimable_bytes_and_the_last_eviction(bounded, redis):
    make_state(bounded, "a", size=500)
    make_state(bounded, "b", size=450, age=5)
    before = cache.status(bounded, "default")
    assert before["pressure_reasons"] == ["usage_above_high_watermark"]
    assert before["reclaimable_bytes"] == 500 and before["blocked_count"] == 1
    cache.evict(bounded, trigger="test")
    after = cache.status(bounded, "default")
    assert after["usage_bytes"] == 450 and after["last_eviction"]["freed_bytes"] == 500
    assert CacheEviction.select().count() == 1


REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15",
           "psql_args": ["-c", "create table a (i int)", "-c", "insert into a values (1)"]}


def _plant(ctx, state_id: str, parent: str | None, task_hash: str, image: str) -> None:
    State.create(org="default", state_id=state_id, parent_state_id=parent, image_id=image, prepare_kind="psql",
                 task_hash=task_hash, size_bytes=1, host=ctx.host)


def test_explain_says_no_matching_state_when_nothing_was_built(ctx, redis):
    answer = explain_prepare(ctx, "default", dict(REQUEST))
    assert (answer["decision"], answer["reason_code"], answer["matched_state_id"]) == ("miss", "no_matching_state", None)


def test_explain_names_the_first_step_that_changed(ctx, redis):
    first = explain_prepare(ctx, "default", dict(REQUEST))
    _plant(ctx, first["steps"][0]["state_id"], None, "h0", first["resolved_image_id"])
    answer = explain_prepare(ctx, "default", dict(REQUEST))
    assert (answer["decision"], answer["reason_code"]) == ("miss", "step_changed:1")
    assert answer["matched_state_id"] == first["steps"][0]["state_id"]
    assert [s["cached"] for s in answer["steps"]] == [True, False]


def test_explain_reports_a_hit_when_every_state_exists(ctx, redis):
    first = explain_prepare(ctx, "default", dict(REQUEST))
    _plant(ctx, first["steps"][0]["state_id"], None, "h0", first["resolved_image_id"])
    _plant(ctx, first["steps"][1]["state_id"], first["steps"][0]["state_id"], "h1", first["resolved_image_id"])
    answer = explain_prepare(ctx, "default", dict(REQUEST))
    assert (answer["decision"], answer["reason_code"]) == ("hit", "exact_state_match")
    assert State.get(State.state_id == answer["matched_state_id"]).use_count == 0  # read-only


def test_explain_says_image_changed_when_the_same_first_step_exists_on_another_image(ctx, redis):
    from appliance.orchestrator.submit import plan_prepare
    planned = plan_prepare(ctx, "default", dict(REQUEST))
    _plant(ctx, "e" * 64, None, planned.steps[0].task_hash, "postgres:14@sha256:other")
    assert explain_prepare(ctx, "default", dict(REQUEST))["reason_code"] == "image_changed"


def test_a_build_may_proceed_above_the_high_watermark_while_under_the_cap(bounded, redis):
    make_state(bounded, "y", size=950, age=5)
    cache.ensure_room(bounded)  # eviction found nothing, but there is still room under the cap


def test_eviction_removes_only_this_hosts_copy_even_while_another_host_serves_the_state(bounded, redis):
    leaf = make_state(bounded, "l", size=950)
    State.create(org="default", state_id=leaf, image_id="postgres:15@sha256:x", prepare_kind="psql",
                 task_hash="t", size_bytes=950, host="other-host")
    Instance.create(instance_id="ef" * 16, org="default", state_id=leaf, image_id="x", volume_id="12" * 16,
                    host_id="other-host", status="active", host="127.0.0.1", port=1, password="p",
                    expires_at=utcnow())
    record = cache.evict(bounded, trigger="test")
    assert [e["state_id"] for e in json.loads(record.evicted_json)] == [leaf]
    assert [s.host for s in State.select().where(State.state_id == leaf)] == ["other-host"]
    assert not bounded.store.has_state("default", leaf)


def test_a_build_is_refused_when_its_estimated_state_would_pass_the_cap(bounded, redis):
    make_state(bounded, "y", size=600, age=5)  # under the high watermark, too young to evict
    with pytest.raises(CacheFullUnreclaimable) as error:
        cache.ensure_room(bounded, next_bytes=600)
    assert error.value.details["reasons"] == ["next_state_would_pass_cap"]
    assert error.value.details["next_state_bytes"] == 600


def test_room_for_the_estimated_state_is_made_by_eviction_below_the_high_watermark(bounded, redis):
    old = make_state(bounded, "a", size=500)
    young = make_state(bounded, "y", size=300, age=5)
    cache.ensure_room(bounded, next_bytes=500)
    assert present(bounded) == {young} and old not in present(bounded)


def test_the_next_state_is_estimated_at_the_size_of_its_parent(bounded, redis):
    parent = make_state(bounded, "p", size=321)
    assert cache.next_states_bytes(bounded, "default", "state", parent, count=2) == 642


def test_a_cache_that_stays_blocked_is_recorded_once_not_at_every_pass(bounded, redis):
    make_state(bounded, "y", size=950, age=5)  # under pressure, nothing evictable
    cache.evict(bounded, trigger="reconciler")
    cache.evict(bounded, trigger="reconciler")
    assert CacheEviction.select().count() == 1


def test_a_change_in_what_blocks_the_cache_is_recorded_again(bounded, redis):
    make_state(bounded, "y", size=950, age=5)
    cache.evict(bounded, trigger="reconciler")
    make_state(bounded, "z", size=20, age=5)
    cache.evict(bounded, trigger="reconciler")
    assert [r.blocked_count for r in CacheEviction.select().order_by(CacheEviction.id)] == [1, 2]
