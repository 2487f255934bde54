"""Failed authentications are limited per client address, on a real Redis: past the burst, the
address gets 429 `rate_limited` (with Retry-After) for every request and no token of it is
verified; the audit log gets one row per address per window, with the counts, not one per
failure. The client address is the connection's peer address (the ASGI scope's `client`)."""
from __future__ import annotations

import asyncio
import json

import pytest

from appliance.api.app import create_app
from appliance.api.auth.tokens import issue_token
from appliance.control.models import AuditEvent

ATTACKER, NEIGHBOUR = ("127.0.0.2", 40000), ("127.0.0.3", 40000)
BURST = 20


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def failed_login_rows() -> list[dict]:
    return [{"source": row.source, **json.loads(row.details_json)}
            for row in AuditEvent.select().where(AuditEvent.action == "auth.failed").order_by(AuditEvent.id)]


@pytest.fixture
def guarded(ctx):
    """Almost no refill during a test, so the counts are exact."""
    def make(**settings):
        ctx.settings = ctx.settings.model_copy(update={"rate_limit_auth_failures_per_address": 0.001,
                                                       "rate_limit_auth_failures_burst": BURST, **settings})
        return create_app(ctx).test_client()
    return make


async def test_a_storm_of_bad_tokens_is_refused_past_the_burst_and_audited_once(guarded):
    client = guarded()
    answers = [await client.get("/v1/whoami", headers=bearer(f"sqlrs_bad-{i}"), scope_base={"client": ATTACKER})
               for i in range(300)]
    statuses = [a.status_code for a in answers]
    assert statuses == [401] * BURST + [429] * (300 - BURST)
    refused = await answers[-1].get_json()
    assert refused["code"] == "rate_limited" and refused["details"]["scope"] == "address"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    rows = failed_login_rows()
    assert len(rows) == 1 and rows[0]["source"] == ATTACKER[0] and (rows[0]["failed"], rows[0]["refused"]) == (1, 0)


async def test_another_address_still_authenticates_during_a_storm(guarded):
    client = guarded()
    _, secret = issue_token("default", name="ci", role="viewer", ttl_seconds=3600, created_by="test")
    storm = [(await client.get("/v1/whoami", headers=bearer(f"sqlrs_bad-{i}"),
                               scope_base={"client": ATTACKER})).status_code for i in range(BURST + 5)]
    answer = await client.get("/v1/whoami", headers=bearer(secret), scope_base={"client": NEIGHBOUR})
    assert storm[-1] == 429 and answer.status_code == 200


async def test_a_limited_address_is_refused_even_with_a_good_token(guarded):
    client = guarded()
    _, secret = issue_token("default", name="ci", role="viewer", ttl_seconds=3600, created_by="test")
    for i in range(BURST):
        await client.get("/v1/whoami", headers=bearer(f"sqlrs_bad-{i}"), scope_base={"client": ATTACKER})
    answer = await client.get("/v1/whoami", headers=bearer(secret), scope_base={"client": ATTACKER})
    assert answer.status_code == 429 and (await answer.get_json())["code"] == "rate_limited"
    from appliance.control.models import ApiToken
    assert ApiToken.get(ApiToken.name == "ci").last_used_at is None  # the token was never looked at


async def test_good_tokens_do_not_use_up_the_failure_budget(guarded):
    client = guarded()
    _, secret = issue_token("default", name="ci", role="viewer", ttl_seconds=3600, created_by="test")
    good = [(await client.get("/v1/whoami", headers=bearer(secret), scope_base={"client": ATTACKER})).status_code
            for _ in range(BURST * 2)]
    bad = [(await client.get("/v1/whoami", headers=bearer(f"sqlrs_bad-{i}"),
                             scope_base={"client": ATTACKER})).status_code for i in range(BURST + 1)]
    assert good == [200] * (BURST * 2) and bad == [401] * BURST + [429]


async def test_every_failure_is_counted_in_some_audit_row_across_windows(guarded):
    client = guarded(audit_auth_failures_window_seconds=0.05)
    for i in range(100):
        await client.get("/v1/whoami", headers=bearer(f"sqlrs_bad-{i}"), scope_base={"client": ATTACKER})
    await asyncio.sleep(0.2)  # the window has closed: the next failure carries what it held
    await client.get("/v1/whoami", headers=bearer("sqlrs_bad-last"), scope_base={"client": ATTACKER})
    rows = failed_login_rows()
    assert sum(r["failed"] for r in rows) == BURST and sum(r["refused"] for r in rows) == 101 - BURST
    assert 2 <= len(rows) < 101 and all(r["source"] == ATTACKER[0] for r in rows)
