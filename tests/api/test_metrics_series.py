"""`/metrics` series an operator alerts on: present at 0 before anything happened, and moved by
what really happened (requests, refusals, workers, hosts, transfers)."""
from __future__ import annotations

import contextlib

from prometheus_client.parser import text_string_to_metric_families

from appliance import __version__
from appliance.api.app import create_app
from appliance.api.auth.tokens import create_token
from appliance.control.models import State
from appliance.orchestrator import hosts
from appliance.service.worker import make_worker
from tests.support.states import make_state
from tests.support.transfers import transferred


async def scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=client.auth)
    assert response.status_code == 200
    text = (await response.get_data()).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def series(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


@contextlib.contextmanager
def registered_worker(ctx):
    """A real RQ worker's registration in Redis (what a running worker keeps fresh)."""
    worker = make_worker(ctx.redis, ctx.host)
    worker.register_birth()
    try:
        yield worker
    finally:
        worker.register_death()


async def test_an_idle_hosts_queue_series_are_present_at_zero(ctx, client):
    hosts.register(ctx)
    m = await scrape(client)
    assert series(m, "sqlrs_queue_jobs", host=ctx.host) == 0
    assert series(m, "sqlrs_queue_oldest_age_seconds", host=ctx.host) == 0


async def test_a_host_reports_its_heartbeat_and_its_stores_free_space(ctx, client):
    hosts.register(ctx)
    total, free = ctx.store.disk_space()
    m = await scrape(client)
    assert series(m, "sqlrs_host_up", host=ctx.host) == 1
    assert 0 <= series(m, "sqlrs_host_heartbeat_age_seconds", host=ctx.host) < 60
    assert series(m, "sqlrs_store_size_bytes", host=ctx.host) == total
    assert abs(series(m, "sqlrs_store_free_bytes", host=ctx.host) - free) < 256 * 1024**2


async def test_a_drained_host_is_reported_down(ctx, client):
    hosts.register(ctx)
    hosts.set_drained(ctx.host, True, "maintenance")
    assert series(await scrape(client), "sqlrs_host_up", host=ctx.host) == 0


async def test_no_worker_on_a_host_is_a_zero_not_a_missing_series(ctx, client):
    hosts.register(ctx)
    m = await scrape(client)
    assert series(m, "sqlrs_redis_up") == 1
    assert series(m, "sqlrs_workers", host=ctx.host, state="idle") == 0
    assert series(m, "sqlrs_workers", host=ctx.host, state="busy") == 0


async def test_a_registered_worker_counts_as_alive_on_its_host(ctx, client):
    hosts.register(ctx)
    with registered_worker(ctx):
        alive = await scrape(client)
    gone = await scrape(client)
    assert series(alive, "sqlrs_workers", host=ctx.host, state="idle") == 1
    assert series(gone, "sqlrs_workers", host=ctx.host, state="idle") == 0


async def test_build_info_names_the_release(client):
    m = await scrape(client)
    (labels,) = [dict(key[1]) for key in m if key[0] == "sqlrs_build_info"]
    assert labels["version"] == __version__ and labels["python"]


async def test_requests_are_counted_by_route_pattern_and_status(ctx, client):
    before = await scrape(client)
    await client.get("/v1/instances/no-such-instance", headers=client.auth)
    await client.get("/v1/no/such/path", headers=client.auth)
    m = await scrape(client)
    route = "/v1/instances/<ref>"
    assert series(m, "sqlrs_http_requests_total", method="GET", route=route, status="404") == 1
    assert series(m, "sqlrs_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert series(m, "sqlrs_http_request_duration_seconds_count", method="GET", route=route) == 1
    assert ("sqlrs_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200"))) not in before
    assert series(m, "sqlrs_http_requests_total", method="GET", route="/metrics", status="200") == 1  # counted once answered


async def test_a_refused_token_counts_as_an_authentication_failure(client):
    assert series(await scrape(client), "sqlrs_auth_failures_total") == 0
    response = await client.get("/v1/states", headers={"Authorization": "Bearer sqlrs_not-a-token"})
    assert response.status_code == 401
    assert series(await scrape(client), "sqlrs_auth_failures_total") == 1


async def test_a_429_is_counted_by_the_limit_that_was_spent(ctx, token):
    ctx.settings = ctx.settings.model_copy(update={"rate_limit_per_principal": 0.01, "rate_limit_principal_burst": 2})
    client = create_app(ctx).test_client()
    statuses = [(await client.get("/v1/states", headers={"Authorization": f"Bearer {token}"})).status_code
                for _ in range(3)]
    assert statuses[-1] == 429
    client.auth = {"Authorization": f"Bearer {create_token('default', 'scraper')}"}  # another principal, another bucket
    m = await scrape(client)
    assert series(m, "sqlrs_rate_limited_total", scope="principal") >= 1
    assert series(m, "sqlrs_rate_limited_total", scope="address") == 0


async def test_an_export_and_an_import_count_their_bytes_and_time(ctx, client):
    make_state(ctx)
    exported = await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth))
    manifest = exported["manifest"]
    ctx.store.destroy_state("default", "s1")
    State.delete().where(State.state_id == "s1").execute()
    imported = await transferred(client, ctx, await client.post("/v1/states/import", json={"state_id": "s1"},
                                                                headers=client.auth))
    assert imported["status"] == "succeeded"
    m = await scrape(client)
    for direction in ("export", "import"):
        assert series(m, "sqlrs_transfer_bytes_total", direction=direction) == manifest["stream_bytes"]
        assert series(m, "sqlrs_transfer_duration_seconds_count", direction=direction) == 1


async def test_a_made_up_http_method_is_counted_as_other_not_as_a_series_of_its_own(client):
    for method in ("FOO1", "BAR2"):
        await client.open("/v1/states", method=method, headers=client.auth)
    m = await scrape(client)
    assert not [labels for name, labels in m if name == "sqlrs_http_requests_total" and ("method", "FOO1") in labels]
    other = [(dict(labels), v) for (name, labels), v in m.items()
             if name == "sqlrs_http_requests_total" and dict(labels)["method"] == "other"]
    assert sum(v for _, v in other) == 2, other


async def test_a_newline_in_a_path_cannot_forge_an_access_log_line(client, caplog):
    caplog.set_level("INFO", logger="sqlrs.access")
    await client.get("/v1/x%0A2026-12-05 INFO forged line", headers=client.auth)
    (record,) = [r for r in caplog.records if r.name == "sqlrs.access"]
    assert "\n" not in record.getMessage() and "\\n2026-12-05" in record.getMessage()
