"""Every org identifier, wherever it comes from (the X-Sqlrs-Org header, an OIDC token's org
claim or group memberships, a robot or operator token, a quota, a share), is an org slug before
anything uses it: a bad one is refused with a stable code, and nothing is written for it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.api.app import create_app
from appliance.api.auth import create_token
from appliance.control.models import ApiToken, Org, SourceBundle
from appliance.errors import InvalidArgument
from appliance.settings import Settings
from tests.support.api import assert_rejected
from tests.support.tarballs import make_tarball

BAD_ORGS = ["../../x", "Weird Org!", "-dash", "x" * 64, "a/b", "acme\n"]
BUNDLE = make_tarball([("schema.sql", b"create table t (id int);\n", {})])


def files_under(root: Path) -> set[str]:
    """Every path under ``root`` except the Control DB's own files (failed logins are audited)."""
    found = set()
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.relpath(os.path.join(current, name), root)
            if not path.startswith("control.db"):
                found.add(path)
    return found


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def groups_client(ctx, issuer):
    """The API with OIDC memberships read from a `groups` claim."""
    from tests.support.oidc import AUDIENCE
    ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE,
                                                   "oidc_groups_claim": "groups"})
    return create_app(ctx).test_client()


async def test_an_oidc_token_whose_org_climbs_out_of_the_data_dir_uploads_nothing(oidc_client, issuer, tmp_path):
    before = files_under(tmp_path)
    response = await oidc_client.post("/v1/sources", data=BUNDLE, headers={
        **bearer(issuer.token(org="../../x", role="admin")), "Content-Type": "application/gzip"})
    await assert_rejected(response, 401, "unauthenticated", "org")
    assert files_under(tmp_path) == before
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
    assert SourceBundle.select().count() == 0


@pytest.mark.parametrize("org", BAD_ORGS)
async def test_an_oidc_token_with_a_malformed_org_claim_is_unauthenticated(oidc_client, issuer, org):
    response = await oidc_client.get("/v1/whoami", headers=bearer(issuer.token(org=org, role="member")))
    await assert_rejected(response, 401, "unauthenticated", "org")


async def test_a_well_formed_org_claim_is_still_accepted(oidc_client, issuer):
    response = await oidc_client.get("/v1/whoami", headers=bearer(issuer.token(org="acme-2", role="member")))
    assert response.status_code == 200 and (await response.get_json())["org"] == "acme-2"


async def test_a_group_membership_naming_a_malformed_org_is_ignored(groups_client, issuer):
    token = issuer.token(org=None, role=None, groups=["sqlrs:../../x:admin", "sqlrs:Weird Org!:admin",
                                                      "sqlrs:acme:member"])
    response = await groups_client.get("/v1/whoami", headers=bearer(token))
    body = await response.get_json()
    assert response.status_code == 200, body
    assert (body["org"], body["role"]) == ("acme", "member")


async def test_a_token_whose_only_memberships_name_malformed_orgs_grants_nothing(groups_client, issuer, tmp_path):
    before = files_under(tmp_path)
    token = issuer.token(org=None, role=None, groups=["sqlrs:../../x:admin"])
    response = await groups_client.post("/v1/sources", data=BUNDLE,
                                        headers={**bearer(token), "Content-Type": "application/gzip"})
    await assert_rejected(response, 403, "permission_denied")
    assert files_under(tmp_path) == before


async def test_the_org_header_naming_a_malformed_org_is_rejected(client):
    for org in ("../../x", "Weird Org!"):
        response = await client.get("/v1/whoami", headers={**client.auth, "X-Sqlrs-Org": org})
        await assert_rejected(response, 400, "invalid_argument", "X-Sqlrs-Org")


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/orgs/Weird%20Org!/tokens", {"name": "ci"}),
    ("GET", "/v1/orgs/Weird%20Org!/tokens", None),
    ("GET", "/v1/orgs/Weird%20Org!/usage", None),
    ("PUT", "/v1/orgs/Weird%20Org!/quota", {"max_instances": 3}),
])
async def test_a_malformed_org_in_an_org_route_is_rejected(client, method, path, body):
    response = await client.open(path, method=method, json=body, headers=client.auth)
    await assert_rejected(response, 400, "invalid_argument", "org")


async def test_a_share_with_a_malformed_grantee_is_rejected(client):
    response = await client.post("/v1/states/" + "0" * 32 + "/shares", json={"org": "../../x"}, headers=client.auth)
    await assert_rejected(response, 400, "invalid_argument", "org")


@pytest.mark.parametrize("org", ["../../x", "Weird Org!"])
def test_an_operator_token_for_a_malformed_org_is_not_created(ctx, org):
    before = ApiToken.select().count()
    with pytest.raises(InvalidArgument):
        create_token(org, "ci")
    assert ApiToken.select().count() == before
    assert Org.get_or_none(Org.slug == org) is None


def test_a_malformed_default_org_is_a_configuration_error(tmp_path):
    with pytest.raises(ValidationError, match="default_org"):
        Settings(data_dir=tmp_path, default_org="../../x")
