"""A platform team shares a base state; another team's prepares hit it, read-only, and build
on it in their own space; the owner's copy stays protected while they depend on it."""
from __future__ import annotations

import uuid

from tests.support.prepares import executes
from tests.support.psql import psql


def test_a_shared_base_state_is_a_cache_hit_for_the_grantee_and_stays_the_owners(appliance, scripts):
    platform, team = f"platform-{uuid.uuid4().hex[:6]}", f"team-{uuid.uuid4().hex[:6]}"
    with appliance.acting_in(platform):
        base = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
        base_ids = [t["output_state_id"] for t in executes(base)]
        shared = appliance.post(f"/v1/states/{base_ids[-1]}/shares", json={"org": team})
        assert shared.status_code == 201, shared.text

    with appliance.acting_in(team):
        grown = appliance.prepare(["-f", "schema.sql", "-f", "data.sql", "-f", "more.sql"], scripts)
        assert grown["status"] == "succeeded", grown["error"]
        assert [t["cached"] for t in executes(grown)] == [True, True, False]  # the ancestor came with the grant
        assert psql(grown["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"
        listed = {s["state_id"]: s for s in appliance.get("/v1/states").json()}
        assert {listed[i]["shared_from"] for i in base_ids} == {platform}
        assert listed[executes(grown)[2]["output_state_id"]]["shared_from"] is None  # what it built is its own
        denied = appliance.delete(f"/v1/states/{base_ids[-1]}")
        assert denied.status_code == 403 and "read-only" in denied.json()["message"]

    with appliance.acting_in(platform):
        blocked = appliance.delete(f"/v1/states/{base_ids[-1]}", params={"recurse": "true", "force": "true"})
        assert blocked.status_code == 409 and blocked.json()["root"]["blocked"] == "used_by_shared_orgs"
        assert appliance.delete(f"/v1/states/{base_ids[-1]}/shares/{team}").status_code == 200

    with appliance.acting_in(team):
        again = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
        assert [t["cached"] for t in executes(again)] == [False, False]  # revoked: the team builds its own
    audit = appliance.get("/v1/audit", params={"org": platform}).json()
    assert [(a["action"], a["details"]["grantee"]) for a in audit if a["action"] in ("state.shared", "state.unshared")] \
        == [("state.shared", team), ("state.unshared", team)]
