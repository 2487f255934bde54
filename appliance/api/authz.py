"""Which role each route needs, in one table; a route missing from it is refused (fail closed).

Roles are per org and cumulative (viewer < member < admin). Another org's objects are never
reached by role: every lookup is inside the caller's org and answers 404 for the rest.
"""
from __future__ import annotations

from appliance.api.auth import Principal
from appliance.errors import PermissionDenied

ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/metrics"): "operator",  # counts across every org
    ("GET", "/v1/ready"): "viewer",
    ("GET", "/v1/whoami"): "viewer",
    ("GET", "/v1/prepare-jobs"): "viewer",
    ("GET", "/v1/prepare-jobs/<job_id>"): "viewer",
    ("GET", "/v1/prepare-jobs/<job_id>/events"): "viewer",
    ("GET", "/v1/prepare-jobs/<job_id>/artifacts"): "viewer",
    ("GET", "/v1/prepare-jobs/<job_id>/artifacts/<path:name>"): "viewer",
    ("GET", "/v1/tasks"): "viewer",
    ("GET", "/v1/states"): "viewer",
    ("GET", "/v1/states/<state_id>"): "viewer",
    ("GET", "/v1/instances"): "viewer",
    ("GET", "/v1/instances/<ref>"): "viewer",
    ("GET", "/v1/cache/status"): "viewer",
    ("GET", "/v1/projects"): "viewer",
    ("POST", "/v1/prepare-jobs"): "member",
    ("POST", "/v1/prepare-jobs/<job_id>/cancel"): "member",
    ("DELETE", "/v1/prepare-jobs/<job_id>"): "member",
    ("POST", "/v1/sources"): "member",
    ("POST", "/v1/cache/explain/prepare"): "member",
    ("DELETE", "/v1/instances/<ref>"): "member",
    ("POST", "/v1/instances/<ref>/extend"): "member",
    ("POST", "/v1/states/<state_id>/export"): "member",
    ("DELETE", "/v1/states/<state_id>"): "admin",
    ("GET", "/v1/states/<state_id>/shares"): "viewer",
    ("POST", "/v1/states/<state_id>/shares"): "admin",
    ("DELETE", "/v1/states/<state_id>/shares/<grantee>"): "admin",
    ("POST", "/v1/states/import"): "admin",
    ("GET", "/v1/transfers/<transfer_id>"): "viewer",
    ("POST", "/v1/projects"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/orgs/<org>/usage"): "viewer",
    ("GET", "/v1/orgs/<org>/shares"): "viewer",
    ("PUT", "/v1/orgs/<org>/quota"): "operator",  # an org's admins may not raise their own limits
    ("GET", "/v1/orgs/<org>/tokens"): "admin",
    ("POST", "/v1/orgs/<org>/tokens"): "admin",
    ("DELETE", "/v1/orgs/<org>/tokens/<token_id>"): "admin",
}


def required_role(method: str, rule: str) -> str | None:
    return ROUTE_ROLES.get(("GET" if method == "HEAD" else method, rule))


def require_role(principal: Principal, method: str, rule: str | None) -> None:
    if rule is None or method == "OPTIONS":
        return  # no such route: routing answers 404/405 next
    needed = required_role(method, rule)
    if needed is None:
        raise PermissionDenied(f"{method} {rule} is not open to any role")
    if not principal.may(needed):
        raise PermissionDenied(f"this needs the {needed} role in org {principal.org}; you are {principal.role}",
                               {"required_role": needed, "role": principal.role})
