"""Liveness (no auth) and readiness (Control DB, Redis, store, runtime)."""
from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import validate_response

from appliance import __version__
from appliance.api.app import call, context
from appliance.api.schemas import Health, Readiness
from appliance.control.models import SchemaVersion

blueprint = Blueprint("health", __name__)


@blueprint.get("/v1/health")
@validate_response(Health)
async def health():
    return {"ok": True, "version": __version__}


def _checks(ctx) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        SchemaVersion.select().count()
        checks["control_db"] = "ok"
    except Exception as exc:
        checks["control_db"] = f"error: {type(exc).__name__}"
    try:
        ctx.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    checks["store"] = "ok" if ctx.store.root.is_dir() else "error: store directory missing"
    try:
        checks["runtime"] = ctx.runtime.health()
    except Exception as exc:
        checks["runtime"] = f"error: {type(exc).__name__}"
    return checks


@blueprint.get("/v1/ready")
@validate_response(Readiness, 200)
@validate_response(Readiness, 503)
async def ready():
    ctx = context()
    checks = await call(_checks, ctx)
    ok = all(value == "ok" for value in checks.values())
    return ({"ok": ok, "checks": checks, "store_driver": ctx.store.driver.name,
             "store_reason": ctx.storage_reason, "warnings": ctx.storage_warnings,
             "isolation": ctx.isolation.describe() if ctx.isolation is not None else None}, 200 if ok else 503)


@blueprint.get("/metrics")
async def metrics():
    from prometheus_client import CONTENT_TYPE_LATEST
    from quart import current_app

    from appliance.api.metrics import render
    ctx = context()
    http = current_app.extensions["sqlrs-http-metrics"].collectors()
    return Response(await call(render, ctx.settings, ctx.redis, *http), content_type=CONTENT_TYPE_LATEST)
