"""Robot tokens, roles within an org, and OIDC memberships, through the real API in-process."""
from __future__ import annotations

from appliance.api.app import create_app
from appliance.api.auth.tokens import issue_token
from appliance.api.authz import ROUTE_ROLES
from appliance.control.models import ApiToken, Instance, PrepareJob, utcnow
from tests.support.api import assert_rejected

JOB = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def bearer(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


def robot(org: str, role: str) -> dict[str, str]:
    _, secret = issue_token(org, name=f"{org}-{role}", role=role, ttl_seconds=3600, created_by="test")
    return bearer(secret)


async def test_an_org_admin_creates_a_robot_token_that_is_shown_once(client):
    admin = robot("default", "admin")
    created = await client.post("/v1/orgs/default/tokens", json={"name": "ci pipeline", "role": "member"}, headers=admin)
    assert created.status_code == 201
    body = await created.get_json()
    assert body["token"].startswith("sqlrs_") and body["role"] == "member" and body["expires_at"]
    listed = await (await client.get("/v1/orgs/default/tokens", headers=admin)).get_json()
    assert body["token_id"] in {t["token_id"] for t in listed}
    assert all("token" not in t for t in listed) and body["token"] not in str(listed)
    assert ApiToken.get(ApiToken.token_id == body["token_id"]).token_hash != body["token"]
    me = await (await client.get("/v1/whoami", headers=bearer(body["token"]))).get_json()
    assert me == {"subject": f"token:{body['token_id']}", "org": "default", "role": "member", "via": "api_token",
                  "global_admin": False, "orgs": [{"org": "default", "role": "member"}]}
    assert ApiToken.get(ApiToken.token_id == body["token_id"]).last_used_at is not None


async def test_a_token_above_its_creators_role_or_lifetime_is_refused(client):
    admin = robot("default", "admin")
    too_long = await client.post("/v1/orgs/default/tokens", json={"name": "x", "ttl_seconds": 10**9}, headers=admin)
    await assert_rejected(too_long, 400, "invalid_argument", "exceeds the maximum")
    bad_role = await client.post("/v1/orgs/default/tokens", json={"name": "x", "role": "owner"}, headers=admin)
    await assert_rejected(bad_role, 400, "invalid_argument")


async def test_a_member_may_prepare_but_not_manage_tokens(client):
    member = robot("default", "member")
    assert (await client.post("/v1/prepare-jobs", json=JOB, headers=member)).status_code == 201
    denied = await client.post("/v1/orgs/default/tokens", json={"name": "x"}, headers=member)
    await assert_rejected(denied, 403, "permission_denied")
    assert (await denied.get_json())["details"]["required_role"] == "admin"


async def test_a_viewer_reads_but_changes_nothing(client):
    viewer = robot("default", "viewer")
    assert (await client.get("/v1/prepare-jobs", headers=viewer)).status_code == 200
    await assert_rejected(await client.post("/v1/prepare-jobs", json=JOB, headers=viewer), 403, "permission_denied")
    assert PrepareJob.select().count() == 0


async def test_only_members_of_the_owning_org_see_a_dsn(client):
    Instance.create(instance_id="ab" * 16, org="default", state_id="s" * 64, image_id="postgres:15",
                    volume_id="cd" * 16, status="active", host="127.0.0.1", port=6543, password="secret-pw",
                    expires_at=utcnow())
    as_viewer = await (await client.get("/v1/instances", headers=robot("default", "viewer"))).get_json()
    as_member = await (await client.get("/v1/instances", headers=robot("default", "member"))).get_json()
    assert "dsn" not in as_viewer[0] and "secret-pw" not in str(as_viewer)
    assert "secret-pw" in as_member[0]["dsn"]


async def test_another_orgs_admin_finds_no_token_list_and_cannot_switch_org(client):
    other = robot("other", "admin")
    await assert_rejected(await client.get("/v1/orgs/default/tokens", headers=other), 404, "not_found")
    switched = await client.get("/v1/prepare-jobs", headers={**other, "X-Sqlrs-Org": "default"})
    await assert_rejected(switched, 403, "permission_denied")


async def test_the_operator_token_acts_in_any_org_it_names(client):
    created = await client.post("/v1/orgs/acme/tokens", json={"name": "bootstrap", "role": "admin"},
                                headers={**client.auth, "X-Sqlrs-Org": "acme"})
    assert created.status_code == 201 and (await created.get_json())["org"] == "acme"


async def test_every_route_needs_a_role_from_the_table():
    from tests.support.api import NoContext
    app = create_app(NoContext)
    public = {"/v1/health", "/openapi.json", "/v1/auth/config"}
    for rule in app.url_map.iter_rules():
        if rule.rule in public or rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, rule.rule) in ROUTE_ROLES, f"{method} {rule.rule} has no role"


# -- OIDC memberships ----------------------------------------------------------------------
async def test_an_oidc_member_may_prepare_in_its_org(oidc_client, issuer):
    response = await oidc_client.post("/v1/prepare-jobs", json=JOB,
                                      headers=bearer(issuer.token(org="default", role="member")))
    assert response.status_code == 201


async def test_an_oidc_token_without_sqlrs_claims_is_denied(oidc_client, issuer):
    response = await oidc_client.get("/v1/whoami", headers=bearer(issuer.token(org=None, role=None)))
    await assert_rejected(response, 403, "permission_denied", "no sqlrs org")


async def test_group_memberships_pick_the_org_from_the_header(ctx, token, issuer):
    from tests.support.oidc import AUDIENCE
    ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE,
                                                   "oidc_groups_claim": "groups"})
    client = create_app(ctx).test_client()
    token_ = issuer.token(org=None, role=None, groups=["sqlrs:acme:admin", "sqlrs:beta:viewer", "unrelated"])
    ambiguous = await client.get("/v1/whoami", headers=bearer(token_))
    await assert_rejected(ambiguous, 400, "invalid_argument", "several orgs")
    beta = await (await client.get("/v1/whoami", headers=bearer(token_, **{"X-Sqlrs-Org": "beta"}))).get_json()
    assert (beta["org"], beta["role"]) == ("beta", "viewer")
    elsewhere = await client.get("/v1/whoami", headers=bearer(token_, **{"X-Sqlrs-Org": "gamma"}))
    await assert_rejected(elsewhere, 403, "permission_denied")


async def test_a_member_may_raise_a_jobs_priority_only_up_to_the_members_cap(client, ctx):
    member = robot("default", "member")
    cap = ctx.settings.priority_max_member
    assert (await client.post("/v1/prepare-jobs", json={**JOB, "priority": cap}, headers=member)).status_code == 201
    too_high = await client.post("/v1/prepare-jobs", json={**JOB, "priority": cap + 1}, headers=member)
    await assert_rejected(too_high, 403, "priority_not_allowed")
    assert (await too_high.get_json())["details"]["max_priority"] == cap
    assert PrepareJob.select().count() == 1


async def test_an_admin_may_set_a_higher_priority_and_anyone_may_lower_it(client, ctx):
    admin, member = robot("default", "admin"), robot("default", "member")
    high = ctx.settings.priority_max_admin
    assert (await client.post("/v1/prepare-jobs", json={**JOB, "priority": high}, headers=admin)).status_code == 201
    assert (await client.post("/v1/prepare-jobs", json={**JOB, "priority": -100}, headers=member)).status_code == 201
