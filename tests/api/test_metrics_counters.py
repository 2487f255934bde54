"""`/metrics` counters only rise: deleting or pruning the rows of what they counted lowers none."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from appliance.orchestrator import retention
from tests.support.jobs import age, lost_job


async def scrape(client) -> dict[tuple[str, tuple], float]:
    text = (await (await client.get("/metrics", headers=client.auth)).get_data()).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


ERRORS = ("sqlrs_job_errors_total", (("code", "internal_error"),))
FAILED = ("sqlrs_prepare_jobs_finished_total", (("status", "failed"),))


async def test_deleting_a_failed_job_does_not_lower_the_error_counter(ctx, client):
    job = lost_job(ctx)
    before = await scrape(client)
    response = await client.delete(f"/v1/prepare-jobs/{job.job_id}", headers=client.auth)
    assert response.status_code == 200
    after = await scrape(client)
    assert (before[ERRORS], before[FAILED]) == (1, 1)
    assert (after[ERRORS], after[FAILED]) == (1, 1)


async def test_pruning_old_jobs_does_not_lower_the_counters(ctx, client):
    jobs = [lost_job(ctx) for _ in range(2)]
    for job in jobs:
        age(job.job_id, ctx.settings.job_retention_days + 1)
    assert retention.prune(ctx).jobs == 2
    after = await scrape(client)
    assert (after[ERRORS], after[FAILED]) == (2, 2)


async def test_a_job_that_ends_after_the_reconciler_failed_it_is_counted_once(ctx, client):
    from appliance.build.job import JobRun
    job = lost_job(ctx)
    JobRun(ctx, job)._finish("failed", None)  # the silent worker wakes up and records its end too
    after = await scrape(client)
    assert after[FAILED] == 1


async def test_a_queued_job_is_in_its_hosts_queue_gauge_and_the_live_gauges(ctx, client):
    from appliance.orchestrator.submit import submit_prepare
    from tests.support.jobs import REQUEST
    job = submit_prepare(ctx, "default", dict(REQUEST))
    m = await scrape(client)
    assert m[("sqlrs_queue_jobs", (("host", job.host_id),))] == 1
    assert m[("sqlrs_queue_oldest_age_seconds", (("host", job.host_id),))] >= 0
    assert m[("sqlrs_prepare_jobs", (("status", "queued"),))] == 1
    assert m[("sqlrs_org_queued_jobs", (("org", "default"),))] == 1


def record_copy(org: str, state_id: str, host: str) -> None:
    from appliance.control.models import State
    State.create(org=org, state_id=state_id, image_id="postgres:15", prepare_kind="psql", task_hash="h",
                 size_bytes=1000, host=host)


async def test_a_state_is_counted_once_however_many_hosts_hold_a_copy(ctx, client):
    for org, state_id in (("default", "a" * 64), ("default", "b" * 64), ("other", "a" * 64)):
        record_copy(org, state_id, "host-1")
    one_host = await scrape(client)
    record_copy("default", "a" * 64, "host-2")
    two_hosts = await scrape(client)
    assert one_host[("sqlrs_states", ())] == two_hosts[("sqlrs_states", ())] == 3
    assert two_hosts[("sqlrs_state_copies", (("host", "host-2"),))] == 1
