"""A hanging or failing OIDC issuer slows down no one but the OIDC requests that truly need it:
robot (API) tokens never wait on it, the issuer is asked for its keys at most once per
`oidc_jwks_refetch_seconds` whatever came of the last try, and tokens with unknown `kid`s fail
fast while a refetch is in flight. The issuer is the real local one, switched to hang or fail."""
from __future__ import annotations

import asyncio

import pytest
from joserfc.jwk import RSAKey

from appliance.api.app import create_app
from appliance.api.auth.tokens import issue_token
from tests.support.oidc import AUDIENCE

BOUND_SECONDS = 60  # only so that a regression fails instead of hanging the suite


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def robots(count: int) -> list[dict[str, str]]:
    return [bearer(issue_token("default", name=f"robot-{i}", role="viewer", ttl_seconds=3600,
                               created_by="test")[1]) for i in range(count)]


async def until(condition) -> None:
    for _ in range(BOUND_SECONDS * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


@pytest.fixture
def oidc_app(ctx, issuer):
    def make(**settings):
        ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE,
                                                       **settings})
        return create_app(ctx).test_client()
    return make


async def test_robot_tokens_and_unknown_kids_are_answered_while_a_hanging_issuer_holds_the_one_refetch(
        oidc_app, issuer):
    client = oidc_app(oidc_jwks_refetch_seconds=0.5)
    assert (await client.get("/v1/whoami", headers=bearer(issuer.token()))).status_code == 200  # keys cached
    rogue = RSAKey.generate_key(2048, parameters={"kid": "rogue"})
    sprayed = [bearer(issuer.token(key=rogue)) for _ in range(12)]
    robot_headers = robots(10)
    await asyncio.sleep(0.6)  # past the refetch interval: one unknown kid may look again
    before = issuer.jwks_fetches
    with issuer.hang():
        spray = [asyncio.create_task(client.get("/v1/whoami", headers=h)) for h in sprayed]
        await until(lambda: issuer.held == 1)
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.get("/v1/whoami", headers=h) for h in robot_headers)), BOUND_SECONDS)
        assert [a.status_code for a in answers] == [200] * 10
        await until(lambda: sum(task.done() for task in spray) >= 11)
        assert issuer.held == 1  # the issuer was not asked again while it hung
        assert sum(not task.done() for task in spray) == 1
    statuses = [(await task).status_code for task in spray]
    assert statuses == [401] * 12
    assert issuer.jwks_fetches - before == 1


async def test_robot_tokens_do_not_wait_for_oidc_requests_stuck_on_a_first_key_fetch(oidc_app, issuer):
    client = oidc_app()  # nothing cached: every OIDC request needs the issuer's keys
    robot_headers = robots(10)
    tokens = [bearer(issuer.token()) for _ in range(10)]
    before = issuer.jwks_fetches
    with issuer.hang():
        stuck = [asyncio.create_task(client.get("/v1/whoami", headers=h)) for h in tokens]
        await until(lambda: issuer.held == 1)
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.get("/v1/whoami", headers=h) for h in robot_headers)), BOUND_SECONDS)
        assert [a.status_code for a in answers] == [200] * 10
        assert issuer.held == 1 and not any(task.done() for task in stuck)
    assert [(await task).status_code for task in stuck] == [200] * 10  # one fetch served them all
    assert issuer.jwks_fetches - before == 1


async def test_a_failing_issuer_is_asked_for_its_keys_at_most_once_per_refetch_interval(oidc_app, issuer):
    client = oidc_app(oidc_jwks_refetch_seconds=3600)
    before = issuer.jwks_fetches
    issuer.jwks_status = 503
    try:
        answers = [await client.get("/v1/whoami", headers=bearer(issuer.token())) for _ in range(10)]
    finally:
        issuer.jwks_status = 200
    assert [a.status_code for a in answers] == [503] * 10
    assert {(await a.get_json())["code"] for a in answers} == {"issuer_unavailable"}
    assert issuer.jwks_fetches - before == 1
