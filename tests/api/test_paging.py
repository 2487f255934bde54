"""Every list is paged: `limit` rows at a time, an opaque cursor for the next page in `Link` and
`Sqlrs-Next-Cursor`, keyset order that survives equal timestamps and rows added meanwhile, and
a clear 400 for a cursor the list did not give out."""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.api.auth.tokens import issue_token
from appliance.control.models import AuditEvent, Instance, PrepareJob, Project, State, StateShare, Task, utcnow
from tests.support.api import assert_rejected

SAME_TIME = utcnow()


def job(n: int, org: str = "default", status: str = "succeeded", created_at=SAME_TIME) -> str:
    job_id = f"{n:032x}"
    PrepareJob.create(job_id=job_id, org=org, status=status, prepare_kind="psql", image_id="postgres:15",
                      request_json="{}", instance_ttl_seconds=60, created_at=created_at)
    return job_id


async def pages(client, path: str, **query) -> list[tuple[list[dict], dict]]:
    """Every page of a list, following Link: (rows, headers) each."""
    out, url, params = [], path, dict(query)
    while True:
        response = await client.get(url, headers=client.auth, query_string=params)
        assert response.status_code == 200, await response.get_data(as_text=True)
        out.append((await response.get_json(), response.headers))
        link = response.headers.get("Link")
        if not link:
            return out
        assert link.endswith('>; rel="next"')
        target = urlsplit(link[1:link.index(">")])
        url, params = target.path, {k: v[0] for k, v in parse_qs(target.query).items()}


async def refused(client, path: str, status: int, code: str, *, query_string: dict) -> None:
    await assert_rejected(await client.get(path, headers=client.auth, query_string=query_string), status, code)


def ids(all_pages, key: str) -> list[str]:
    return [row[key] for rows, _ in all_pages for row in rows]


async def test_paging_through_a_list_gives_every_row_once_in_order_even_with_equal_timestamps(client):
    made = [job(n) for n in range(7)]  # one created_at for all: only the id orders them
    got = await pages(client, "/v1/prepare-jobs", limit=3)
    assert [len(rows) for rows, _ in got] == [3, 3, 1]
    assert ids(got, "job_id") == sorted(made)


async def test_only_a_page_with_a_next_page_names_it(client):
    for n in range(4):
        job(n)
    first, last = await pages(client, "/v1/prepare-jobs", limit=3)
    assert first[1].get("Sqlrs-Next-Cursor") and first[1].get("Link")
    assert last[1].get("Sqlrs-Next-Cursor") is None and last[1].get("Link") is None


async def test_filters_are_kept_from_page_to_page(client):
    for n in range(6):
        job(n, status="failed" if n % 2 else "succeeded")
    got = await pages(client, "/v1/prepare-jobs", limit=2, status="failed")
    assert ids(got, "job_id") == [f"{n:032x}" for n in (1, 3, 5)]


async def test_another_orgs_rows_are_on_no_page(client):
    mine = [job(n) for n in range(3)]
    job(100, org="intruders")
    assert ids(await pages(client, "/v1/prepare-jobs", limit=1), "job_id") == mine


async def test_rows_added_between_pages_neither_repeat_nor_hide_the_others(client):
    old = [job(n) for n in range(4)]
    response = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={"limit": 2})
    first = [row["job_id"] for row in await response.get_json()]
    job(50, created_at=SAME_TIME.replace(year=SAME_TIME.year - 1))  # sorts before every page: not seen now
    rest = await client.get("/v1/prepare-jobs", headers=client.auth,
                            query_string={"limit": 10, "cursor": response.headers["Sqlrs-Next-Cursor"]})
    assert first + [row["job_id"] for row in await rest.get_json()] == old


async def test_ndjson_pages_carry_the_same_next_page(client):
    for n in range(3):
        job(n)
    response = await client.get("/v1/prepare-jobs", query_string={"limit": 2},
                                headers={**client.auth, "Accept": "application/x-ndjson"})
    lines = (await response.get_data(as_text=True)).splitlines()
    assert [json.loads(line)["job_id"] for line in lines] == [f"{n:032x}" for n in range(2)]
    assert response.headers["Sqlrs-Next-Cursor"]


@pytest.mark.parametrize("limit", ["0", "1001", "x"])
async def test_a_limit_out_of_range_is_refused(client, limit):
    await refused(client, "/v1/prepare-jobs", 400, "invalid_argument", query_string={"limit": limit})


async def cursor_of(client, path: str, **query) -> str:
    response = await client.get(path, headers=client.auth, query_string={"limit": 1, **query})
    return response.headers["Sqlrs-Next-Cursor"]


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJrIjpbMV0sImYiOiJ4In0"])
async def test_a_cursor_this_list_did_not_give_out_is_refused(client, cursor):
    await refused(client, "/v1/prepare-jobs", 400, "invalid_cursor", query_string={"cursor": cursor})


async def test_a_cursor_of_another_list_is_refused(client):
    for n in range(2):
        job(n)
        Task.create(job=f"{n:032x}", task_id="plan", position=0, type="plan", status="succeeded")
    cursor = await cursor_of(client, "/v1/tasks")
    await refused(client, "/v1/prepare-jobs", 400, "invalid_cursor", query_string={"cursor": cursor})


async def test_a_cursor_made_with_other_filters_is_refused(client):
    for n in range(2):
        job(n)
    cursor = await cursor_of(client, "/v1/prepare-jobs", status="succeeded")
    await refused(client, "/v1/prepare-jobs", 400, "invalid_cursor", query_string={"cursor": cursor, "status": "failed"})


async def test_tasks_are_paged_across_jobs_in_job_then_position_order(client):
    for n in range(2):
        job(n)
        for position in range(3):
            Task.create(job=f"{n:032x}", task_id=f"execute-{position}", position=position, type="state_execute",
                        status="succeeded")
    got = await pages(client, "/v1/tasks", limit=4)
    assert [(row["job_id"][-1], row["task_id"]) for rows, _ in got for row in rows] == [
        (str(n), f"execute-{p}") for n in range(2) for p in range(3)]


def state(n: int, org: str = "default", host: str = "h1") -> str:
    state_id = f"{n:064x}"
    State.create(org=org, state_id=state_id, image_id="postgres:15", prepare_kind="psql", task_hash="h", host=host,
                 created_at=SAME_TIME)
    return state_id


async def test_states_are_paged_once_each_whatever_their_copies_then_the_shared_ones(client):
    own = [state(n) for n in range(5)]
    state(0, host="h2")  # a second copy of the first state
    shared = state(9, org="friends")
    StateShare.create(org="friends", state_id=shared, grantee="default", granted_by="test")
    state(10, org="friends")  # not shared: never listed
    got = await pages(client, "/v1/states", limit=2)
    assert ids(got, "state_id") == own + [shared]
    assert [len(rows) for rows, _ in got] == [2, 2, 2]


async def test_a_state_is_paged_where_its_earliest_copy_was_made(client):
    made = {}
    for n, minutes in ((0, 3), (1, 1), (2, 2)):
        made[n] = State.create(org="default", state_id=f"{n:064x}", image_id="postgres:15", prepare_kind="psql",
                               task_hash="h", host="h1", created_at=SAME_TIME + dt.timedelta(minutes=minutes))
    State.create(org="default", state_id=f"{0:064x}", image_id="postgres:15", prepare_kind="psql", task_hash="h",
                 host="h2", created_at=SAME_TIME)  # the newest state's copy on another host is the oldest copy
    got = await pages(client, "/v1/states", limit=1)
    assert ids(got, "state_id") == [f"{n:064x}" for n in (0, 1, 2)]


async def test_instances_are_paged(client):
    for n in range(3):
        Instance.create(instance_id=f"{n:032x}", org="default", state_id="5" * 64, image_id="postgres:15",
                        volume_id=f"{n:032x}", host_id="h1", status="active", host="127.0.0.1", port=7000 + n,
                        password="x", expires_at=utcnow(), created_at=SAME_TIME)
    assert ids(await pages(client, "/v1/instances", limit=2), "instance_id") == [f"{n:032x}" for n in range(3)]


async def test_the_audit_log_is_paged_in_the_order_it_was_written(client):
    AuditEvent.delete().execute()
    for n in range(5):
        AuditEvent.create(org="default", actor="test", action="test.paged", outcome="ok", object_id=str(n))
    got = await pages(client, "/v1/audit", limit=2, action="test.paged")
    assert [row["object_id"] for rows, _ in got for row in rows] == [str(n) for n in range(5)]


async def test_projects_are_paged_by_name(client):
    for name in ("c", "a", "b"):
        Project.create(org="default", name=name, repo_path=f"/srv/{name}")
    assert ids(await pages(client, "/v1/projects", limit=2), "name") == ["a", "b", "c"]


async def test_a_member_of_another_org_pages_through_nothing_of_ours(client):
    for n in range(3):
        job(n)
    _, secret = issue_token("intruders", name="b", role="admin", ttl_seconds=3600, created_by="test")
    response = await client.get("/v1/prepare-jobs", headers={"Authorization": f"Bearer {secret}"},
                                query_string={"limit": 1})
    assert await response.get_json() == [] and "Link" not in response.headers
