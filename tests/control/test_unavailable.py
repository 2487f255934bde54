"""A Control DB or Redis that goes away: the API answers 503 with a stable code, and recovers
on its own when the service is back; workers wait instead of failing (real servers, killed)."""
from __future__ import annotations

import threading
import time

import pytest
from redis import Redis

from appliance.api.app import create_app
from appliance.control.db import retry_while_unavailable
from appliance.control.models import PrepareJob
from tests.support.ports import free_tcp_port


@pytest.fixture
def control_db_url(control_postgres) -> str:  # these tests stop the server: PostgreSQL only
    return control_postgres.new_database_url()


@pytest.fixture
def halted(control_postgres):
    control_postgres.halt()
    yield control_postgres
    control_postgres.resume()


async def test_requests_get_503_control_db_unavailable_while_the_control_db_is_down(client, halted):
    response = await client.get("/v1/prepare-jobs", headers=client.auth)
    assert response.status_code == 503
    body = await response.get_json()
    assert body["code"] == "control_db_unavailable" and "retry" in body["message"]
    assert response.headers["Retry-After"] == "2"
    assert "postgres@" not in body["message"] and "127.0.0.1" not in body["message"]


async def test_the_api_reconnects_by_itself_once_the_control_db_is_back(client, control_postgres):
    assert (await client.get("/v1/prepare-jobs", headers=client.auth)).status_code == 200
    control_postgres.halt()
    control_postgres.resume()  # every pooled connection is now dead
    for _ in range(4):  # each request may land on another pooled thread: all of them reconnect
        assert (await client.get("/v1/prepare-jobs", headers=client.auth)).status_code == 200


def test_a_worker_waits_for_the_control_db_and_then_goes_on(ctx, control_postgres):
    control_postgres.halt()
    threading.Timer(2.0, control_postgres.resume).start()
    started = time.monotonic()
    count = retry_while_unavailable(lambda: PrepareJob.select().count(), what="counting jobs", give_up_after=30)
    assert count == 0 and time.monotonic() - started >= 2.0


def test_a_worker_statement_waits_for_a_restarting_control_db_instead_of_failing(ctx, control_db_url,
                                                                               control_postgres):
    from appliance.control.db import open_database
    worker_db = open_database(control_db_url, wait_seconds=30)
    try:
        assert PrepareJob.select().count() == 0  # a live connection on this thread
        control_postgres.halt()
        threading.Timer(2.0, control_postgres.resume).start()
        started = time.monotonic()
        assert PrepareJob.select().count() == 0
        assert time.monotonic() - started >= 2.0
    finally:
        worker_db.close()


def test_a_worker_gives_up_after_its_bound_with_the_last_error(ctx, halted):
    import peewee
    with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
        retry_while_unavailable(lambda: PrepareJob.select().count(), what="counting jobs", give_up_after=1)


@pytest.fixture
def queue_down(ctx):
    ctx.redis = Redis(port=free_tcp_port(), socket_connect_timeout=1)  # nothing listens there
    return ctx


async def test_reads_answer_from_the_control_db_while_redis_is_down(queue_down, token):
    client = create_app(queue_down).test_client()
    response = await client.get("/v1/prepare-jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_writes_get_503_queue_unavailable_while_redis_is_down(queue_down, token):
    client = create_app(queue_down).test_client()
    response = await client.post("/v1/prepare-jobs", headers={"Authorization": f"Bearer {token}"},
                                 json={"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]})
    assert response.status_code == 503
    assert (await response.get_json())["code"] == "queue_unavailable"
