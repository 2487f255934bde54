"""The Quart application: auth in front, routes behind, one error mapping."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from quart import Quart, g, request
from quart_schema import QuartSchema

from appliance import __version__
from appliance.api.audit import record_failed_login, record_response
from appliance.api.auth import ORG_HEADER, Authenticator
from appliance.api.authz import require_role
from appliance.api.errors import install_error_handlers
from appliance.api.observability import HttpMetrics, request_finished, request_started
from appliance.api.openapi import ApplianceOpenAPIProvider
from appliance.api.ratelimit import AuthFailureLimiter, AuthFailuresLimited, RateLimiter
from appliance.api.requests import JsonRequest
from appliance.context import AppContext
from appliance.control.scope import OrgScope
from appliance.errors import Unauthenticated
from appliance.logs import bind as bind_log_context
from appliance.orchestrator.queue import UNAVAILABLE as QUEUE_UNAVAILABLE

log = logging.getLogger(__name__)
PUBLIC_PATHS = {"/v1/health", "/v1/auth/config", "/openapi.json"}
CONSOLE_PREFIX = "/ui"  # the web console's files: public, like any login page; its data comes through the API
READ_METHODS = {"GET", "HEAD", "OPTIONS"}  # change nothing: they work while the queue is down
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")  # a client's own id is kept when it is sane


def create_app(ctx: AppContext) -> Quart:
    app = Quart("sqlrs-appliance", static_folder=None)
    app.request_class = JsonRequest  # one JSON-body parser: a bad body is a 400, never a 500
    app.config["MAX_CONTENT_LENGTH"] = ctx.settings.max_bundle_bytes + 1024 * 1024
    app.config["BODY_TIMEOUT"] = 600
    app.extensions["sqlrs"] = ctx
    app.extensions["sqlrs-http-metrics"] = http_metrics = HttpMetrics()
    # No browser UIs: they load scripts from CDNs, which air-gapped sites cannot reach.
    QuartSchema(app, info={"title": "sqlrs appliance", "version": __version__},
                swagger_ui_path=None, redoc_ui_path=None, scalar_ui_path=None,
                security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
                security=[{"bearer": []}], openapi_provider_class=ApplianceOpenAPIProvider)
    install_error_handlers(app)
    authenticator = Authenticator(ctx.settings)
    limiter = functools.cache(lambda: RateLimiter(ctx.redis, ctx.settings))  # Redis is connected on first use
    auth_failures = functools.cache(lambda: AuthFailureLimiter(ctx.redis, ctx.settings))

    @app.before_request
    async def _authenticate() -> None:
        request_started()
        request_id = request.headers.get("X-Request-ID", "")
        g.request_id = request_id if REQUEST_ID.match(request_id) else secrets.token_hex(8)
        bind_log_context(request_id=g.request_id)
        if _public(request.path):
            return
        # The peer address: behind a reverse proxy, the proxy's (no forwarded header is trusted).
        address = request.remote_addr or "unknown"
        try:  # an address that failed too often gets 429 for everything, its tokens unverified
            await _limit(lambda: auth_failures().admit(address))
        except AuthFailuresLimited as exc:
            if exc.audit_counts:
                await record_failed_login("too many failed authentications from this address", exc.audit_counts)
            raise
        try:
            g.principal = await authenticator.authenticate(request.headers.get("Authorization"),
                                                           request.headers.get(ORG_HEADER))
        except Unauthenticated as exc:
            counts = await _limit(lambda: auth_failures().failed(address))
            if counts:
                await record_failed_login(exc.message, counts)
            raise
        bind_log_context(org=g.principal.org)
        await _limit(lambda: limiter().check(g.principal))
        require_role(g.principal, request.method, request.url_rule.rule if request.url_rule else None)

    @app.after_request
    async def _audit(response):
        await record_response(response)
        if getattr(g, "request_id", None):
            response.headers["X-Request-ID"] = g.request_id  # what to quote when asking the operator
        request_finished(http_metrics, response, access_log=ctx.settings.access_log)
        return response

    if ctx.settings.warm_pool_size > 0:
        _hold_bind_connections(app, ctx)

    from appliance.api.routes import (
        artifacts,
        audit,
        auth,
        cache,
        console,
        health,
        instances,
        jobs,
        orgs,
        sources,
        states,
        tokens,
        transfer,
    )
    for module in (health, auth, jobs, states, instances, sources, cache, transfer, artifacts, tokens, audit, orgs,
                   console):
        app.register_blueprint(module.blueprint)
    return app


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


async def _limit(check: Callable[[], Any]) -> Any:
    """A rate-limit check. The buckets live in Redis: while it is away, a read goes unlimited (it
    needs only the Control DB) and a write answers 503 ``queue_unavailable``."""
    try:
        return await asyncio.to_thread(check)
    except QUEUE_UNAVAILABLE as exc:
        if request.method not in READ_METHODS:
            raise
        log.warning("rate limits skipped for a read: the queue (Redis) is unreachable (%s)", exc)
        return None


def _hold_bind_connections(app: Quart, ctx: AppContext) -> None:
    """While serving, keep a connection open to each pooled clone: hits answered at admission
    bind over it (see ``runtime.admin_connections``)."""
    from appliance.orchestrator.warm_pool import hold_bind_connections_forever

    @app.before_serving
    async def _start() -> None:
        app.extensions["sqlrs-bind-connections"] = asyncio.ensure_future(hold_bind_connections_forever(ctx))

    @app.after_serving
    async def _stop() -> None:
        hub = app.extensions.pop("sqlrs-wakeups", None)
        if hub is not None:
            await hub.close()
        task = app.extensions.pop("sqlrs-bind-connections", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def scope() -> OrgScope:
    """The caller's org's rows: the only way routes read tenant data."""
    return OrgScope(g.principal.org)


def context() -> AppContext:
    from quart import current_app
    return current_app.extensions["sqlrs"]


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking Control-DB/driver work off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def deletion_response(answer: dict) -> tuple[dict, int]:
    """A blocked delete answers 409 with its DeleteResult; one left to the reconciler (an
    instance whose teardown failed) 202; a dry run always answers 200."""
    if answer["dry_run"]:
        return answer, 200
    return answer, {"blocked": 409, "deleting": 202}.get(answer["outcome"], 200)
