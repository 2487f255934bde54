"""How a browser signs in: the one unauthenticated route a client needs before it has a token."""
from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import validate_response

from appliance.api.app import context

blueprint = Blueprint("auth", __name__)


class OidcClient(BaseModel):
    issuer: str = Field(description="Where the browser finds `/.well-known/openid-configuration`")
    client_id: str = Field(description="The console's public client (authorization code with PKCE)")
    scopes: str
    audience: str = Field(description="The `aud` the appliance requires of access tokens")


class AuthConfig(BaseModel):
    oidc: OidcClient | None = Field(description="null: sign in with an API token only")


@blueprint.get("/v1/auth/config")
@validate_response(AuthConfig)
async def auth_config():
    s = context().settings
    if not (s.oidc_issuer and s.oidc_client_id):
        return {"oidc": None}
    return {"oidc": {"issuer": s.oidc_issuer.rstrip("/"), "client_id": s.oidc_client_id,
                     "scopes": s.oidc_scopes, "audience": s.oidc_audience or ""}}
