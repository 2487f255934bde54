"""Authentication at the gateway: API tokens and OIDC access tokens become one ``Principal``.

A bearer value starting with ``sqlrs_`` is an API token; anything else is an OIDC access
token (when an issuer is configured). A principal with several orgs (OIDC groups) or an
operator token picks the org of a request with the ``X-Sqlrs-Org`` header.

May import: the foundation and ``control`` (API tokens live in the Control DB).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from appliance.api.auth.oidc import OidcVerifier
from appliance.api.auth.principal import ROLES, Principal, role_rank
from appliance.api.auth.tokens import PREFIX, create_token, ensure_admin_token, hash_token, verify_api_token
from appliance.errors import InvalidArgument, PermissionDenied, Unauthenticated
from appliance.ids import ORG_RULE, is_org, valid_org
from appliance.settings import Settings

ORG_HEADER = "X-Sqlrs-Org"
log = logging.getLogger(__name__)
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9._~+/=-]+)$")

__all__ = ["Authenticator", "Principal", "ROLES", "role_rank", "ORG_HEADER", "create_token",
           "ensure_admin_token", "hash_token"]


OIDC_THREADS = 4  # OIDC verification runs here, never in the pool that API tokens and routes use


class Authenticator:
    def __init__(self, settings: Settings):
        self.oidc = OidcVerifier(settings) if settings.oidc_issuer else None
        self._oidc_pool = (ThreadPoolExecutor(OIDC_THREADS, thread_name_prefix="sqlrs-oidc")
                           if self.oidc is not None else None)

    async def authenticate(self, authorization: str | None, org_header: str | None = None) -> Principal:
        """The token's shape decides the path before anything is verified: an API token is
        checked against the Control DB alone and never waits on the OIDC issuer or its threads."""
        secret = bearer_secret(authorization)
        if secret.startswith(PREFIX):
            principal = await asyncio.to_thread(verify_api_token, secret)
            principal = (_in_org(principal, org_header) if principal.global_admin
                         else _own_org_only(principal, org_header))
            if not principal.global_admin:
                principal = dataclasses.replace(principal, memberships=((principal.org, principal.role),))
        else:
            if self.oidc is None or self._oidc_pool is None:
                raise Unauthenticated("invalid token")
            claims = await asyncio.get_running_loop().run_in_executor(self._oidc_pool, self.oidc.verify, secret)
            memberships = _valid_memberships(self.oidc.settings, self.oidc.memberships(claims))
            subject = str(claims.get(self.oidc.settings.oidc_subject_claim) or "unknown")
            org = _chosen_org(memberships, org_header)
            principal = Principal(subject=f"oidc:{subject}", org=org, role=memberships[org], via="oidc",
                                  memberships=tuple(sorted(memberships.items())))
        if not is_org(principal.org):  # every path above validated it; a principal never leaves without one
            raise Unauthenticated("invalid token: it names no valid org")
        return principal


def _valid_memberships(settings: Settings, memberships: dict[str, str]) -> dict[str, str]:
    """The token's orgs, each a valid org slug, before any of them is used. A malformed org claim
    makes the token unusable (401); a malformed group membership is ignored, like one with an
    unknown role, and a token left with none grants nothing (403)."""
    valid = {org: role for org, role in memberships.items() if is_org(org)}
    if len(valid) == len(memberships):
        return memberships
    log.warning("ignored %d OIDC org membership(s) that are not org slugs", len(memberships) - len(valid))
    if not settings.oidc_groups_claim:
        raise Unauthenticated(f"invalid token: its {settings.oidc_org_claim} claim is not {ORG_RULE}")
    if not valid:
        raise PermissionDenied(f"the token grants no sqlrs org: its memberships name no org that is {ORG_RULE}")
    return valid


def bearer_secret(authorization: str | None) -> str:
    match = _BEARER.match((authorization or "").strip())
    if not match:
        raise Unauthenticated("missing or malformed bearer token (Authorization: Bearer …)")
    return match.group(1)


def _valid_org(org_header: str) -> str:
    return valid_org(org_header, ORG_HEADER)


def _chosen_org(memberships: dict[str, str], org_header: str | None) -> str:
    if org_header:
        org = _valid_org(org_header)
        if org not in memberships:
            raise PermissionDenied(f"you are not a member of org {org}")
        return org
    if len(memberships) > 1:
        raise InvalidArgument(f"you are a member of several orgs ({', '.join(sorted(memberships))}): "
                              f"name one with the {ORG_HEADER} header",
                              {"reason": "org_required",
                               "orgs": [{"org": org, "role": role} for org, role in sorted(memberships.items())]})
    return next(iter(memberships))


def _in_org(principal: Principal, org_header: str | None) -> Principal:
    """An operator token may act in any org."""
    if not org_header:
        return principal
    return dataclasses.replace(principal, org=_valid_org(org_header))


def _own_org_only(principal: Principal, org_header: str | None) -> Principal:
    if org_header and _valid_org(org_header) != principal.org:
        raise PermissionDenied(f"this token acts for org {principal.org} only")
    return principal
