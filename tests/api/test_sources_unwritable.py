"""A host whose sources dir cannot be written still recognises bundles it already holds, and
answers a new one with 503 `sources_unwritable`, never a 500."""
from __future__ import annotations

from tests.support.mounts import read_only
from tests.support.tarballs import make_tarball


async def test_an_already_known_bundle_uploads_while_the_sources_dir_is_read_only(ctx, client):
    data = make_tarball([("a.sql", b"select 1;\n", {})])
    first = await client.post("/v1/sources", data=data, headers=client.auth)
    with read_only(ctx.sources_dir):
        again = await client.post("/v1/sources", data=data, headers=client.auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert (await again.get_json())["source_id"] == (await first.get_json())["source_id"]


async def test_a_new_bundle_on_a_read_only_sources_dir_is_a_503_with_a_stable_code(ctx, client):
    data = make_tarball([("b.sql", b"select 2;\n", {})])
    with read_only(ctx.sources_dir):
        response = await client.post("/v1/sources", data=data, headers=client.auth)
    body = await response.get_json()
    assert response.status_code == 503
    assert body["code"] == "sources_unwritable"
    assert str(ctx.sources_dir) in body["message"]
