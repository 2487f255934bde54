"""`GET /v1/audit`: the audit log, for org admins (their org) and operators (every org)."""
from __future__ import annotations

import datetime as dt
import json

from pydantic import ConfigDict, Field
from quart import Blueprint, g
from quart_schema import validate_querystring

from appliance.api.listing import page_of, paged
from appliance.api.paging import OrderedPageQuery
from appliance.api.serializers import ts
from appliance.control import audit
from appliance.control.models import AuditEvent

blueprint = Blueprint("audit", __name__)


class AuditQuery(OrderedPageQuery):
    model_config = ConfigDict(extra="forbid")
    since: dt.datetime | None = Field(None, description="Only events at or after this time (ISO 8601)")
    action: str | None = Field(None, pattern=r"^[a-z_.]{1,64}$", description="e.g. prepare.submitted")
    org: str | None = Field(None, description="Operators only: one org (default: every org)")


def _entry(e) -> dict:
    return {"at": ts(e.at), "org": e.org, "actor": e.actor, "action": e.action, "object_kind": e.object_kind,
            "object_id": e.object_id, "outcome": e.outcome, "source": e.source,
            "details": json.loads(e.details_json) if e.details_json else None}


@blueprint.get("/v1/audit")
@validate_querystring(AuditQuery)
async def list_audit(query_args: AuditQuery):
    principal = g.principal
    org = (query_args.org if principal.global_admin else principal.org)
    since = query_args.since.astimezone(dt.UTC).replace(tzinfo=None) if (
        query_args.since and query_args.since.tzinfo) else query_args.since
    query = audit.events(org=org, since=since, action=query_args.action)
    return await paged(page_of(query, (AuditEvent.id,), lambda e: (e.id,), query_args, _entry), query_args)
