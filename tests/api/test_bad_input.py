"""Bad input answers a clear 4xx with a stable code and changes nothing."""
from __future__ import annotations

import os
import tarfile

import pytest

from appliance.control.models import JobEvent, PrepareJob, SourceBundle, State, Task
from tests.support.api import assert_rejected
from tests.support.tarballs import make_tarball


def counts() -> tuple[int, ...]:
    return tuple(model.select().count() for model in (PrepareJob, Task, JobEvent, State, SourceBundle))


async def upload(client, data: bytes):
    return await client.post("/v1/sources", data=data,
                             headers={**client.auth, "Content-Type": "application/gzip"})


async def submit(client, **body):
    request = {"prepare_kind": "psql", "image_id": "postgres:15", **body}
    return await client.post("/v1/prepare-jobs", json=request, headers=client.auth)


@pytest.fixture
async def source_id(client) -> str:
    data = make_tarball([("schema.sql", b"create table t (id int);\n", {}),
                         ("a.sql", b"\\i b.sql\n", {}), ("b.sql", b"\\i a.sql\n", {})])
    return (await (await upload(client, data)).get_json())["source_id"]


async def test_an_unknown_prepare_kind_is_rejected(client):
    before = counts()
    await assert_rejected(await submit(client, prepare_kind="mysql", psql_args=["-c", "select 1"]),
                          400, "invalid_argument", "prepare_kind")
    assert counts() == before


async def test_connection_flags_in_psql_args_are_rejected(client):
    before = counts()
    for flags in (["-h", "db.example"], ["--port=5432"], ["-U", "admin"], ["-d", "prod"]):
        await assert_rejected(await submit(client, psql_args=[*flags, "-c", "select 1"]),
                              400, "invalid_argument")
    assert counts() == before


async def test_a_file_missing_from_the_bundle_is_rejected(client, source_id):
    before = counts()
    body = await assert_rejected(
        await submit(client, psql_args=["-f", "missing.sql"], source={"source_id": source_id}),
        400, "invalid_argument", "missing.sql")
    assert counts() == before
    assert body["message"]


async def test_an_include_cycle_is_rejected(client, source_id):
    before = counts()
    await assert_rejected(await submit(client, psql_args=["-f", "a.sql"], source={"source_id": source_id}),
                          400, "invalid_argument", "cycle")
    assert counts() == before


async def test_a_path_escaping_the_bundle_is_rejected(client, source_id):
    before = counts()
    await assert_rejected(await submit(client, psql_args=["-f", "../../etc/passwd"],
                                       source={"source_id": source_id}), 400, "invalid_argument")
    assert counts() == before


async def test_a_bundle_with_a_traversal_entry_is_rejected(client, ctx):
    before = counts()
    await assert_rejected(await upload(client, make_tarball([("../evil.sql", b"select 1;", {})])),
                          400, "invalid_argument")
    assert counts() == before
    assert not (ctx.sources_dir.parent / "evil.sql").exists()


async def test_a_bundle_with_a_symlink_escaping_it_is_rejected(client):
    before = counts()
    data = make_tarball([("link.sql", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})])
    await assert_rejected(await upload(client, data), 400, "invalid_argument")
    assert counts() == before


async def test_an_oversize_bundle_is_rejected(client, ctx):
    before = counts()
    data = make_tarball([("big.sql", os.urandom(ctx.settings.max_bundle_bytes + 1), {})])
    await assert_rejected(await upload(client, data), 413, "invalid_argument")
    assert counts() == before


async def test_a_decompression_bomb_is_rejected(client, ctx):
    before = counts()
    data = make_tarball([("zeros.sql", b"\0" * (ctx.settings.max_bundle_bytes * 4), {})])
    assert len(data) < ctx.settings.max_bundle_bytes
    await assert_rejected(await upload(client, data), 413, "invalid_argument")
    assert counts() == before


async def test_a_body_that_is_not_a_tarball_is_rejected(client):
    await assert_rejected(await upload(client, b"definitely not gzip"), 400, "invalid_argument")


async def test_malformed_json_is_rejected(client):
    before = counts()
    response = await client.post("/v1/prepare-jobs", data=b"{not json",
                                 headers={**client.auth, "Content-Type": "application/json"})
    await assert_rejected(response, 400, "invalid_argument")
    assert counts() == before


async def test_an_unknown_field_is_rejected(client):
    await assert_rejected(await submit(client, psql_args=["-c", "select 1"], surprise=True),
                          400, "invalid_argument", "surprise")


async def test_an_unknown_image_is_rejected(client):
    await assert_rejected(await submit(client, image_id="postgres:9", psql_args=["-c", "select 1"]),
                          400, "invalid_argument", "postgres:9")


async def test_a_ttl_above_the_maximum_is_rejected(client, ctx):
    ttl = ctx.settings.instance_max_ttl_seconds + 1
    await assert_rejected(await submit(client, psql_args=["-c", "select 1"], instance={"ttl_seconds": ttl}),
                          400, "invalid_argument", "ttl")


async def test_an_unknown_job_id_answers_not_found(client):
    for method, path in (("GET", "/v1/prepare-jobs/0123456789abcdef0123456789abcdef"),
                         ("GET", "/v1/prepare-jobs/nope/events"),
                         ("POST", "/v1/prepare-jobs/0123456789abcdef0123456789abcdef/cancel"),
                         ("DELETE", "/v1/prepare-jobs/0123456789abcdef0123456789abcdef")):
        response = await client.open(path, method=method, headers=client.auth)
        await assert_rejected(response, 404, "not_found")


async def test_an_unknown_source_id_is_rejected(client):
    await assert_rejected(await submit(client, psql_args=["-f", "a.sql"], source={"source_id": "0" * 64}),
                          400, "invalid_argument", "not uploaded")


async def test_requests_without_a_valid_token_are_unauthenticated(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = await client.get("/v1/prepare-jobs", headers=headers)
        await assert_rejected(response, 401, "unauthenticated")


JSON_ROUTES = [("POST", "/v1/prepare-jobs"), ("POST", "/v1/cache/explain/prepare"),
               ("POST", "/v1/orgs/default/tokens"), ("POST", "/v1/projects"), ("POST", "/v1/states/import"),
               ("PUT", "/v1/orgs/default/quota"), ("POST", "/v1/states/0123456789abcdef/shares"),
               ("POST", "/v1/instances/nope/extend")]


NOT_A_JSON_OBJECT = [b'{"name": "\xff\xfe"}', b"\xc3\x28", b'{"name": "a\\u0000b"}', b'{"name": "\\ud800"}',
                     b'["a", 1]', b'"just a string"', b"42", b"null", b"", b"{", b'{"a": 1} trailing']


@pytest.mark.parametrize("method, path", JSON_ROUTES)
async def test_a_json_body_that_is_not_a_storable_object_is_rejected_on_every_route(client, method, path):
    """Not UTF-8, NUL characters, lone surrogates, not an object, not JSON at all."""
    before = counts()
    for body in NOT_A_JSON_OBJECT:
        response = await client.open(path, method=method, data=body,
                                     headers={**client.auth, "Content-Type": "application/json"})
        await assert_rejected(response, 400, "invalid_argument")
    assert counts() == before


@pytest.mark.parametrize("name", ["n" * 256 + ".sql", "d/" + "é" * 128 + ".sql",
                                  "/".join(["d" * 200] * 25) + "/x.sql", "/".join(["a"] * 2100) + "/x.sql",
                                  b"caf\xe9.sql".decode("utf-8", "surrogateescape")],
                         ids=["name over 255 bytes", "multibyte name over 255 bytes", "path over PATH_MAX",
                              "path deeper than PATH_MAX", "name not UTF-8"])
async def test_a_bundle_entry_with_an_unstorable_name_is_rejected(client, ctx, name):
    before = counts()
    await assert_rejected(await upload(client, make_tarball([(name, b"select 1;\n", {})])), 400, "invalid_argument")
    assert counts() == before
