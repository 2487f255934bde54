"""The cache of Liquibase plans: ``update-sql``'s changesets per (org, plan key).

See ``appliance.planning.liquibase.plans`` for why a plan can be reused: a repeated request is
planned at admission without a JVM.
"""
from __future__ import annotations

import dataclasses
import json

from appliance.control.models import LiquibasePlan, utcnow
from appliance.planning.liquibase.plans import PlannedChangeset
from appliance.planning.liquibase.update_sql import Changeset


def cached_plan(org: str, key: str) -> list[PlannedChangeset] | None:
    row = LiquibasePlan.get_or_none((LiquibasePlan.org == org) & (LiquibasePlan.plan_key == key))
    if row is None:
        return None
    LiquibasePlan.update(last_used_at=utcnow()).where(LiquibasePlan.id == row.id).execute()
    return [PlannedChangeset(Changeset(**c["changeset"]), c["volatile"], c["preconditions"])
            for c in json.loads(row.changesets_json)]


def remember_plan(org: str, key: str, *, source_id: str, version: str, planned: list[PlannedChangeset]) -> None:
    """First writer wins: two jobs planning the same request at once found the same changesets."""
    changesets = [{"changeset": dataclasses.asdict(p.changeset), "volatile": p.volatile,
                   "preconditions": p.preconditions} for p in planned]
    LiquibasePlan.insert(org=org, plan_key=key, source_id=source_id, liquibase_version=version,
                         changesets_json=json.dumps(changesets)).on_conflict_ignore().execute()
