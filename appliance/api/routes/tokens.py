"""API tokens for robots, managed by org admins, and `whoami` for everyone."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import document_response, validate_request, validate_response

from appliance.api.app import call, context
from appliance.api.auth.tokens import issue_token, org_tokens, revoke
from appliance.api.serializers import ts
from appliance.errors import InvalidArgument, NotFound
from appliance.ids import valid_org

blueprint = Blueprint("tokens", __name__)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$", description="What the token is for")
    role: Literal["viewer", "member", "admin"] = Field("member", description="The token's role in the org")
    ttl_seconds: int | None = Field(None, gt=0, description="Lifetime; default api_token_default_ttl_seconds")


class TokenEntry(BaseModel):
    token_id: str
    org: str
    name: str
    role: str
    created_by: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class CreatedToken(TokenEntry):
    token: str = Field(description="The secret, shown this once; only its hash is kept")


class Membership(BaseModel):
    org: str
    role: str


class Whoami(BaseModel):
    subject: str
    org: str
    role: str
    via: str
    global_admin: bool
    orgs: list[Membership] = Field(description="Every org the caller may act in (empty for operators: any)")


def _entry(row) -> dict:
    return {"token_id": row.token_id, "org": row.org, "name": row.name, "role": row.role,
            "created_by": row.created_by, "created_at": ts(row.created_at), "expires_at": ts(row.expires_at),
            "revoked_at": ts(row.revoked_at), "last_used_at": ts(row.last_used_at)}


def own_org(org: str) -> str:
    """Another org's token list does not exist for this caller."""
    if valid_org(org) != g.principal.org:
        raise NotFound(f"org {org} not found")
    return org


@blueprint.get("/v1/whoami")
@validate_response(Whoami)
async def whoami():
    p = g.principal
    return {"subject": p.subject, "org": p.org, "role": p.role, "via": p.via, "global_admin": p.global_admin,
            "orgs": [{"org": org, "role": role} for org, role in p.memberships]}


@blueprint.get("/v1/orgs/<org>/tokens")
@document_response(list[TokenEntry])
async def list_tokens(org: str):
    org = own_org(org)
    return await call(lambda: [_entry(row) for row in org_tokens(org)])


@blueprint.post("/v1/orgs/<org>/tokens")
@validate_request(TokenRequest)
@validate_response(CreatedToken, 201)
async def create(org: str, data: TokenRequest):
    org, settings, principal = own_org(org), context().settings, g.principal
    ttl = data.ttl_seconds or settings.api_token_default_ttl_seconds
    if ttl > settings.api_token_max_ttl_seconds:
        raise InvalidArgument(f"ttl_seconds {ttl} exceeds the maximum of {settings.api_token_max_ttl_seconds}",
                              {"max_ttl_seconds": settings.api_token_max_ttl_seconds})
    if not principal.may(data.role):
        raise InvalidArgument(f"a {principal.role} cannot create a token with the {data.role} role")
    row, secret = await call(issue_token, org, name=data.name, role=data.role, ttl_seconds=ttl,
                             created_by=principal.subject)
    return {**_entry(row), "token": secret}, 201


@blueprint.delete("/v1/orgs/<org>/tokens/<token_id>")
@validate_response(TokenEntry)
async def delete(org: str, token_id: str):
    org = own_org(org)
    return _entry(await call(revoke, org, token_id))
