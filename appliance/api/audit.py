"""What the API writes to the audit log: every change through a route below, with its
outcome, and failed authentications (aggregated per client address and window). Worker-side actions (an instance bound by a job)
are recorded where they happen."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Response, g, request

from appliance.control import audit

log = logging.getLogger(__name__)

AUDITED_ROUTES: dict[tuple[str, str], tuple[str, str, str]] = {
    # (method, rule): (action, object kind, where the object id is: a view arg or a response field)
    ("POST", "/v1/prepare-jobs"): ("prepare.submitted", "job", "job_id"),
    ("POST", "/v1/prepare-jobs/<job_id>/cancel"): ("prepare.cancelled", "job", "job_id"),
    ("DELETE", "/v1/prepare-jobs/<job_id>"): ("prepare.deleted", "job", "job_id"),
    ("DELETE", "/v1/states/<state_id>"): ("state.deleted", "state", "state_id"),
    ("POST", "/v1/states/<state_id>/export"): ("state.exported", "state", "state_id"),
    ("POST", "/v1/states/import"): ("state.imported", "state", "state_id"),
    ("POST", "/v1/states/<state_id>/shares"): ("state.shared", "state", "state_id"),
    ("DELETE", "/v1/states/<state_id>/shares/<grantee>"): ("state.unshared", "state", "state_id"),
    ("DELETE", "/v1/instances/<ref>"): ("instance.deleted", "instance", "ref"),
    ("POST", "/v1/instances/<ref>/extend"): ("instance.extended", "instance", "ref"),
    ("POST", "/v1/orgs/<org>/tokens"): ("token.created", "token", "token_id"),
    ("DELETE", "/v1/orgs/<org>/tokens/<token_id>"): ("token.revoked", "token", "token_id"),
    ("POST", "/v1/projects"): ("project.registered", "project", "name"),
    ("POST", "/v1/sources"): ("source.uploaded", "source", "source_id"),
}


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    return "denied" if status in (401, 403, 404) else "failed"


async def record_response(response: Response) -> None:
    rule = request.url_rule.rule if request.url_rule else None
    principal = getattr(g, "principal", None)
    entry = AUDITED_ROUTES.get((request.method, rule)) if rule else None
    if entry is None or principal is None:
        return
    action, kind, id_field = entry
    object_id = (request.view_args or {}).get(id_field)
    details: dict[str, Any] = {}
    if object_id is None and response.status_code < 400 and response.mimetype == "application/json":
        body = await response.get_json(silent=True)
        if isinstance(body, dict):
            object_id = body.get(id_field)
    if request.args.get("dry_run") in ("true", "1"):
        details["dry_run"] = True
    if "grantee" in (request.view_args or {}) or rule == "/v1/states/<state_id>/shares":
        body = await request.get_json(silent=True) if request.method == "POST" else None
        grantee = (request.view_args or {}).get("grantee") or (body.get("org") if isinstance(body, dict) else None)
        details["grantee"] = grantee if isinstance(grantee, str) else None  # any JSON value may come in
    if response.status_code >= 400:
        body = await response.get_json(silent=True)
        if isinstance(body, dict) and body.get("code"):
            details["error"] = body["code"]
    await asyncio.to_thread(_safely, org=principal.org, actor=principal.subject, action=action,
                            outcome=outcome_of(response.status_code), object_kind=kind, object_id=object_id,
                            source=request.remote_addr, details=details or None)


async def record_failed_login(reason: str, counts: dict[str, int]) -> None:
    """One row for the failed (``failed``: 401) and refused (``refused``: 429 before any token was
    verified) authentications from this address since its previous row; the rate limiter decides
    when one is due (at most one per address per ``audit_auth_failures_window_seconds``)."""
    details = {"reason": reason, "path": request.path, "failed": counts.get("failed", 0),
               "refused": counts.get("refused", 0)}
    await asyncio.to_thread(_safely, org=None, actor="anonymous", action="auth.failed", outcome="denied",
                            source=request.remote_addr, details=details)


def _safely(**fields) -> None:
    """The audit log must not turn a served request into a 500; a lost row is logged loudly."""
    try:
        audit.record(**fields)
    except Exception:
        log.exception("could not write an audit row for %s", fields.get("action"))
