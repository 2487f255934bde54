"""The reconciler against a real Control DB and Redis: Redis holds nothing the DB cannot rebuild."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

from appliance.control.models import PrepareJob, Volume, utcnow
from appliance.orchestrator.locks import build_lock_key
from appliance.orchestrator.queue import is_known_to_redis
from appliance.orchestrator.reconciler import reconcile
from appliance.orchestrator.submit import submit_prepare
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir

REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "create table t (i int)"]}


def test_a_queued_job_that_redis_forgot_is_enqueued_again(ctx, redis):
    job = submit_prepare(ctx, "default", dict(REQUEST))
    assert is_known_to_redis(redis, job.job_id)
    redis.flushall()  # Redis restarted without persistence
    PrepareJob.update(created_at=utcnow() - dt.timedelta(minutes=1)).execute()
    report = reconcile(ctx)
    assert report.requeued_jobs == [job.job_id]
    assert is_known_to_redis(redis, job.job_id)


def test_a_running_job_without_heartbeats_is_failed_with_a_clear_error(ctx, redis):
    job = submit_prepare(ctx, "default", dict(REQUEST))
    stale = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds + 5)
    PrepareJob.update(status="running", heartbeat_at=stale, worker="host:123").execute()
    report = reconcile(ctx)
    assert report.lost_jobs == [job.job_id]
    failed = PrepareJob.get_by_id(job.job_id)
    assert failed.status == "failed" and "host:123" in failed.error_json


def test_a_job_with_a_fresh_heartbeat_is_left_alone(ctx, redis):
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="running", heartbeat_at=utcnow(), worker="host:123").execute()
    assert reconcile(ctx).lost_jobs == []
    assert PrepareJob.get_by_id(job.job_id).status == "running"


def test_a_clone_whose_job_ended_is_destroyed_and_forgotten(ctx, redis):
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="failed").execute()
    Volume.create(volume_id="ab" * 16, org="default", purpose="build", job_id=job.job_id, host_id=ctx.host)
    path = ctx.store.create_volume("default", "ab" * 16)
    (path / "marker").write_text("x")
    report = reconcile(ctx)
    assert report.released_volumes == ["ab" * 16]
    assert not path.exists() and Volume.select().count() == 0


def test_a_clone_no_row_knows_is_removed_from_disk(ctx, redis):
    path = ctx.store.create_volume("default", "cd" * 16)
    report = reconcile(ctx, orphan_grace_seconds=-1)
    assert str(path) in report.orphan_paths and not path.exists()


def test_a_fresh_unclaimed_state_directory_is_left_for_its_writer(ctx, redis):
    ctx.store.create_volume("default", "ef" * 16)
    ctx.store.commit_state("default", "ef" * 16, "0" * 64)
    reconcile(ctx)  # the default grace: a commit is recorded a moment after it lands on disk
    assert ctx.store.has_state("default", "0" * 64)


def test_an_unclaimed_state_whose_build_lock_is_held_is_left_alone(ctx, redis):
    ctx.store.create_volume("default", "ab" * 16)
    ctx.store.commit_state("default", "ab" * 16, "1" * 64)
    lock = build_lock_key("state", ctx.host, "default", "1" * 64)
    redis.set(lock, "holder")
    reconcile(ctx, orphan_grace_seconds=-1)
    assert ctx.store.has_state("default", "1" * 64)
    redis.delete(lock)
    reconcile(ctx, orphan_grace_seconds=-1)
    assert not ctx.store.has_state("default", "1" * 64)


def test_a_run_dir_whose_clone_is_gone_is_removed_and_other_files_are_kept(ctx, redis):
    leftover = ctx.run_dir / ("cd" * 16)
    leftover.mkdir(parents=True)
    (leftover / "postgres.log").write_text("old server log")
    unrelated = ctx.run_dir / "redis.sock"
    unrelated.write_text("")
    report = reconcile(ctx, orphan_grace_seconds=-1)
    assert str(leftover) in report.orphan_paths and not leftover.exists()
    assert unrelated.exists()


def test_what_a_pass_repaired_is_written_to_the_audit_log_and_a_quiet_pass_writes_nothing(ctx, redis):
    from appliance.control.models import AuditEvent
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="running", heartbeat_at=utcnow() - dt.timedelta(hours=1), worker="host:9").execute()
    reconcile(ctx)
    (row,) = AuditEvent.select().where(AuditEvent.action == "reconciler.repaired")
    assert row.actor == f"reconciler:{ctx.host}" and job.job_id in row.details_json
    reconcile(ctx)
    assert AuditEvent.select().where(AuditEvent.action == "reconciler.repaired").count() == 1


def abandoned_instance(ctx, job_id: str | None, *, age_seconds: float = 0):
    from appliance.control.models import Instance
    Volume.create(volume_id="ef" * 16, org="default", purpose="instance", job_id=job_id, host_id=ctx.host)
    path = ctx.store.create_volume("default", "ef" * 16)
    return Instance.create(instance_id="1" * 32, org="default", state_id="s" * 64, image_id="postgres:15",
                           job_id=job_id, volume_id="ef" * 16, status="starting", host="127.0.0.1",
                           host_id=ctx.host, port=7001, password="x",
                           created_at=utcnow() - dt.timedelta(seconds=age_seconds),
                           expires_at=utcnow() + dt.timedelta(hours=1)), path


def test_an_instance_left_starting_by_a_job_that_ended_is_failed_and_its_clone_removed(ctx, redis):
    from appliance.control.models import Instance
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="failed").execute()
    instance, path = abandoned_instance(ctx, job.job_id)
    assert reconcile(ctx).failed_instances == [instance.instance_id]
    assert Instance.get_by_id(instance.instance_id).status == "failed" and not path.exists()


def test_an_instance_starting_for_a_running_job_is_left_alone(ctx, redis):
    from appliance.control.models import Instance
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="running", heartbeat_at=utcnow()).execute()
    instance, path = abandoned_instance(ctx, job.job_id)
    assert reconcile(ctx).failed_instances == []
    assert Instance.get_by_id(instance.instance_id).status == "starting" and path.exists()


def test_a_job_less_instance_starting_for_longer_than_the_grace_is_failed(ctx, redis):
    instance, _ = abandoned_instance(ctx, None, age_seconds=ctx.settings.orphan_grace_seconds + 5)
    assert reconcile(ctx).failed_instances == [instance.instance_id]


def test_no_job_is_judged_lost_until_the_control_db_has_been_back_for_the_lost_after_time(ctx, redis):
    job = submit_prepare(ctx, "default", dict(REQUEST))
    stale = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds + 5)
    PrepareJob.update(status="running", heartbeat_at=stale, worker="host:123").execute()
    assert reconcile(ctx, control_db_reachable_since=utcnow() - dt.timedelta(seconds=1)).lost_jobs == []
    back_long_ago = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds + 1)
    assert reconcile(ctx, control_db_reachable_since=back_long_ago).lost_jobs == [job.job_id]


@pytest.fixture
def served(control_db_url, redis_url, redis):
    """A context whose store the unprivileged Postgres user can reach, as the service sets it up."""
    from appliance.control.db import close_database
    from appliance.service.supervisor import bootstrap
    from appliance.settings import Settings
    data = public_tmpdir("sqlrs-reconciler-") / "data"
    context = bootstrap(Settings(data_dir=data, database_url=control_db_url, redis_url=redis_url,
                                 storage_backend="copy", btrfs_image="off"))
    yield context
    close_database(context.db)
    shutil.rmtree(data.parent, ignore_errors=True)


def test_a_server_running_on_a_clone_no_row_knows_is_stopped_and_recorded(served):
    ctx = served
    path = ctx.store.create_volume("default", "ab" * 16)
    ctx.runtime.init_cluster(path, ctx.runtime.resolve_image("postgres"))
    ctx.runtime.start(path, ctx.run_dir / ("ab" * 16), port=free_tcp_port(), listen_host=None)
    try:
        assert reconcile(ctx).orphan_servers == [str(path.resolve())]
        assert not ctx.runtime.is_running(path)
    finally:
        ctx.runtime.stop(path, mode="immediate")


def test_a_server_whose_clone_has_a_row_is_left_running(served):
    ctx = served
    job = submit_prepare(ctx, "default", dict(REQUEST))
    PrepareJob.update(status="running", heartbeat_at=utcnow()).execute()
    Volume.create(volume_id="cd" * 16, org="default", purpose="build", job_id=job.job_id, host_id=ctx.host)
    path = ctx.store.create_volume("default", "cd" * 16)
    ctx.runtime.init_cluster(path, ctx.runtime.resolve_image("postgres"))
    ctx.runtime.start(path, ctx.run_dir / ("cd" * 16), port=free_tcp_port(), listen_host=None)
    try:
        assert reconcile(ctx).orphan_servers == []
        assert ctx.runtime.is_running(path)
    finally:
        ctx.runtime.stop(path, mode="immediate")


def test_uploads_no_row_knows_are_removed_from_the_object_store_and_the_disk(ctx, redis):
    from appliance import sources
    from appliance.control.models import SourceBundle
    kept_id, orphan_id = "a" * 64, "b" * 64
    SourceBundle.create(org="default", source_id=kept_id, size_bytes=3)
    for source_id in (kept_id, orphan_id):
        ctx.objects.put_bytes(sources.bundle_key("default", source_id), b"tgz")
        sources.source_root(ctx, "default", source_id).mkdir(parents=True)
    staging = ctx.sources_dir / "default" / ".incoming" / "3f2a"
    staging.mkdir(parents=True)
    report = reconcile(ctx, orphan_grace_seconds=-1)
    assert sorted(report.orphan_sources) == sorted([sources.bundle_key("default", orphan_id), str(staging),
                                                    str(sources.source_root(ctx, "default", orphan_id))])
    assert ctx.objects.exists(sources.bundle_key("default", kept_id))
    assert sources.source_root(ctx, "default", kept_id).is_dir()


def test_a_fresh_upload_without_its_row_yet_is_left_alone(ctx, redis):
    from appliance import sources
    ctx.objects.put_bytes(sources.bundle_key("default", "c" * 64), b"tgz")
    assert reconcile(ctx).orphan_sources == []
    assert ctx.objects.exists(sources.bundle_key("default", "c" * 64))


def test_an_upload_another_installation_wrote_is_never_swept(ctx, redis):
    from appliance import sources
    from appliance.objectstore.ownership import OwnedObjectStore
    key = sources.bundle_key("default", "d" * 64)
    OwnedObjectStore(ctx.objects.inner, "another-installation").put_bytes(key, b"tgz")
    assert reconcile(ctx, orphan_grace_seconds=-1).orphan_sources == []
    assert ctx.objects.exists(key)
