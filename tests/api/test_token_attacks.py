"""Forged, stale and malformed credentials: every one answers 401 `unauthenticated` and none
reaches a handler (nothing is created). Tokens are really signed by a local OIDC issuer."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from joserfc.jwk import RSAKey

from appliance.api.auth.tokens import issue_token, revoke
from appliance.control.models import PrepareJob
from tests.support.api import assert_rejected

JOB = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(issuer) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(issuer.claims(role='admin'))}."


def hs256_with_the_public_key(issuer) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public PEM. Signed by hand,
    since JOSE libraries (rightly) refuse to use a PEM as an HMAC key."""
    public_pem = issuer.rsa.as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(issuer.claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(issuer) -> str:
    header, _, signature = issuer.token(role="viewer").split(".")
    return f"{header}.{b64(issuer.claims(role='admin'))}.{signature}"


def unknown_kid(issuer) -> str:
    rogue = RSAKey.generate_key(2048, parameters={"kid": "rogue"})
    return issuer.token(key=rogue)


ATTACKS = {
    "alg none": unsigned,
    "HS256 signed with the public key": hs256_with_the_public_key,
    "wrong issuer": lambda i: i.token(iss="http://127.0.0.1:1/evil"),
    "wrong audience": lambda i: i.token(aud="someone-else"),
    "expired": lambda i: i.token(exp=int(__import__("time").time()) - 3600),
    "not yet valid": lambda i: i.token(nbf=int(__import__("time").time()) + 3600),
    "no expiry": lambda i: i.token(exp=None),
    "unknown kid": unknown_kid,
    "tampered payload": tampered,
    "garbage": lambda i: "not.a.jwt",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_a_forged_or_stale_oidc_token_is_unauthenticated_and_changes_nothing(oidc_client, issuer, attack):
    headers = {"Authorization": f"Bearer {ATTACKS[attack](issuer)}"}
    await assert_rejected(await oidc_client.post("/v1/prepare-jobs", json=JOB, headers=headers), 401, "unauthenticated")
    await assert_rejected(await oidc_client.get("/v1/prepare-jobs", headers=headers), 401, "unauthenticated")
    assert PrepareJob.select().count() == 0


async def test_the_same_claims_properly_signed_are_accepted(oidc_client, issuer):
    for alg in ("RS256", "ES256"):
        response = await oidc_client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token(alg=alg)}"})
        assert response.status_code == 200 and (await response.get_json())["via"] == "oidc"


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(oidc_client, issuer):
    await oidc_client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token()}"})  # keys cached
    before = issuer.jwks_fetches
    for _ in range(5):
        response = await oidc_client.get("/v1/whoami", headers={"Authorization": f"Bearer {unknown_kid(issuer)}"})
        assert response.status_code == 401
    assert issuer.jwks_fetches - before <= 1


async def test_a_key_the_issuer_rotated_in_is_found_by_one_refetch(ctx, oidc_client, issuer):
    ctx.settings = ctx.settings.model_copy(update={"oidc_jwks_refetch_seconds": 0})
    from appliance.api.app import create_app
    client = create_app(ctx).test_client()
    await client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token()}"})
    rotated = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    issuer.rsa, old = rotated, issuer.rsa
    issuer.published_kids.add("rsa-2")
    try:
        response = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token()}"})
        assert response.status_code == 200
    finally:
        issuer.rsa = old
        issuer.published_kids.discard("rsa-2")


async def test_a_revoked_api_token_is_unauthenticated(client):
    row, secret = issue_token("default", name="ci", role="member", ttl_seconds=3600, created_by="test")
    assert (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
    revoke("default", row.token_id)
    response = await client.post("/v1/prepare-jobs", json=JOB, headers={"Authorization": f"Bearer {secret}"})
    await assert_rejected(response, 401, "unauthenticated", "revoked")
    assert PrepareJob.select().count() == 0


async def test_an_expired_api_token_is_unauthenticated(client):
    _, secret = issue_token("default", name="ci", role="member", ttl_seconds=1, created_by="test")
    from appliance.control.models import ApiToken, utcnow
    ApiToken.update(expires_at=utcnow()).where(ApiToken.name == "ci").execute()
    await assert_rejected(await client.get("/v1/whoami", headers={"Authorization": f"Bearer {secret}"}),
                          401, "unauthenticated", "expired")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "bearer sqlrs_x", "Basic dXNlcjpwYXNz",
                                    "Bearer sqlrs_a sqlrs_b", "Bearer sqlrs_\u00e9", "Token sqlrs_abc",
                                    "Bearer sqlrs_unknown"])
async def test_a_malformed_or_unknown_authorization_header_is_unauthenticated(client, header):
    response = await client.post("/v1/prepare-jobs", json=JOB, headers={"Authorization": header} if header else {})
    await assert_rejected(response, 401, "unauthenticated")
    assert PrepareJob.select().count() == 0


async def test_an_oidc_token_is_refused_when_no_issuer_is_configured(client, issuer):
    await assert_rejected(await client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token()}"}),
                          401, "unauthenticated")
