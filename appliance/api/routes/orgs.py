"""An org's quota and usage."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import validate_request, validate_response

from appliance.api.app import call, context
from appliance.api.routes.tokens import own_org
from appliance.control import audit, quotas

blueprint = Blueprint("orgs", __name__)


class OrgUsage(BaseModel):
    org: str
    limits: quotas.Limits
    usage: quotas.Usage


class QuotaChange(BaseModel):
    """Only the limits given change; null returns one to the appliance default."""
    model_config = ConfigDict(extra="forbid")
    max_running_jobs: int | None = Field(None, gt=0)
    max_queued_jobs: int | None = Field(None, gt=0)
    max_instances: int | None = Field(None, gt=0)
    max_state_bytes: int | None = Field(None, gt=0)
    max_ttl_seconds: int | None = Field(None, gt=0)
    instance_memory_mb: int | None = Field(None, ge=16, description="Memory of each instance container")
    instance_cpus: float | None = Field(None, gt=0, le=1024, description="CPUs of each instance container")


@blueprint.get("/v1/orgs/<org>/usage")
@validate_response(OrgUsage)
async def usage(org: str):
    org, settings = own_org(org), context().settings
    return await call(quotas.describe, settings, org)


@blueprint.put("/v1/orgs/<org>/quota")
@validate_request(QuotaChange)
@validate_response(OrgUsage)
async def set_quota(org: str, data: QuotaChange):
    org, settings, principal = own_org(org), context().settings, g.principal
    changes = data.model_dump(exclude_unset=True)

    def apply():
        quotas.set_limits(org, changes, principal.subject)
        audit.record(org=org, actor=principal.subject, action="quota.changed", outcome="ok", object_kind="org",
                     object_id=org, details=changes)
        return quotas.describe(settings, org)
    return await call(apply)
