"""The bounded cache: capacity and pressure, and read-only hit/miss explanations."""
from __future__ import annotations

from quart import Blueprint, g
from quart_schema import validate_request, validate_response

from appliance.api.app import call, context
from appliance.api.schemas import CacheExplainResponse, CacheStatus, PrepareJobRequest
from appliance.orchestrator.cache import status
from appliance.orchestrator.explain import explain_prepare

blueprint = Blueprint("cache", __name__)


@blueprint.get("/v1/cache/status")
@validate_response(CacheStatus)
async def cache_status():
    return await call(status, context(), g.principal.org)


@blueprint.post("/v1/cache/explain/prepare")
@validate_request(PrepareJobRequest)
@validate_response(CacheExplainResponse)
async def explain(data: PrepareJobRequest):
    return await call(explain_prepare, context(), g.principal.org, data.model_dump(exclude_none=True))
