"""An instance whose teardown fails is left `deleting`, with the reason, for the reconciler to
retry with bounded backoff; deleting it never fails the request. Real Control DB, Redis and a copy
store whose clone is made immutable (chattr +i), so removing it fails as a busy clone's would."""
from __future__ import annotations

import datetime as dt

import pytest

from appliance.control.models import Instance, Volume, utcnow
from appliance.orchestrator import deletion
from appliance.orchestrator.reconciler import reconcile
from tests.support.immutable import immutable

VOLUME = "ab" * 16
INSTANCE = "cd" * 16


@pytest.fixture
def instance(ctx):
    """An active instance (no server runs on its clone) and its clone on disk."""
    Volume.create(volume_id=VOLUME, org="default", purpose="instance", host_id=ctx.host)
    path = ctx.store.create_volume("default", VOLUME)
    row = Instance.create(instance_id=INSTANCE, org="default", state_id="s" * 64, image_id="postgres:15",
                          volume_id=VOLUME, status="active", host="127.0.0.1", host_id=ctx.host, port=7001,
                          password="x", expires_at=utcnow() + dt.timedelta(hours=1))
    return row, path


def delete(ctx) -> dict:
    return deletion.delete_instance(ctx, "default", INSTANCE, force=True, dry_run=False)


def retry_is_due() -> None:
    Instance.update(teardown_retry_at=utcnow() - dt.timedelta(seconds=1)).execute()


def test_a_delete_whose_clone_cannot_be_removed_answers_deleting_with_the_reason(ctx, redis, instance):
    _, path = instance
    with immutable(path):
        answer = delete(ctx)
    assert answer["outcome"] == "deleting"
    assert "Operation not permitted" in answer["root"]["teardown_error"]


def test_an_instance_whose_teardown_failed_stays_deleting_with_its_reason_and_its_port(ctx, redis, instance):
    _, path = instance
    with immutable(path):
        delete(ctx)
    row = Instance.get_by_id(INSTANCE)
    assert (row.status, row.port, row.teardown_attempts) == ("deleting", 7001, 1)
    assert "Operation not permitted" in row.teardown_error and row.teardown_retry_at > utcnow()


def test_the_reconciler_finishes_the_teardown_once_its_retry_is_due(ctx, redis, instance):
    _, path = instance
    with immutable(path):
        delete(ctx)
    retry_is_due()
    assert reconcile(ctx).retried_teardowns == [INSTANCE]
    assert Instance.get_or_none(Instance.instance_id == INSTANCE) is None and not path.exists()
    assert Volume.select().count() == 0


def test_the_reconciler_leaves_a_failed_teardown_alone_until_its_retry_is_due(ctx, redis, instance):
    _, path = instance
    with immutable(path):
        delete(ctx)
    assert reconcile(ctx).retried_teardowns == []
    assert Instance.get_by_id(INSTANCE).teardown_attempts == 1 and path.exists()


def test_each_failed_retry_doubles_the_wait_up_to_the_bound(ctx, redis, instance):
    ctx.settings = ctx.settings.model_copy(update={"teardown_retry_min_seconds": 100,
                                                   "teardown_retry_max_seconds": 300})
    _, path = instance
    waits = []
    with immutable(path):
        delete(ctx)
        for _ in range(3):
            retry_is_due()
            before = utcnow()
            reconcile(ctx)
            waits.append(round((Instance.get_by_id(INSTANCE).teardown_retry_at - before).total_seconds(), -2))
    assert waits == [200, 300, 300] and Instance.get_by_id(INSTANCE).teardown_attempts == 4


def test_an_expired_instance_whose_teardown_was_retried_keeps_its_row_as_expired(ctx, redis, instance):
    from appliance import instances
    row, path = instance
    with immutable(path):
        assert instances.destroy_instance(ctx, row, keep_row_as="expired") is False
    retry_is_due()
    reconcile(ctx)
    kept = Instance.get_by_id(INSTANCE)
    assert (kept.status, kept.port, kept.teardown_error) == ("expired", None, None)


async def test_the_api_answers_202_deleting_and_shows_the_reason_in_the_instance(ctx, client, instance):
    _, path = instance
    with immutable(path):
        response = await client.delete(f"/v1/instances/{INSTANCE}", query_string={"force": "true"},
                                       headers=client.auth)
    assert response.status_code == 202 and (await response.get_json())["outcome"] == "deleting"
    entry = await (await client.get(f"/v1/instances/{INSTANCE}", headers=client.auth)).get_json()
    assert entry["status"] == "deleting" and entry["teardown_attempts"] == 1
    assert "Operation not permitted" in entry["teardown_error"]
