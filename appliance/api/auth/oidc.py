"""OIDC access tokens: signature against the issuer's JWKS, then iss/aud/exp/nbf, then claims
mapped onto orgs and roles.

The discovery document is read once (its ``issuer`` must equal the configured one); the JWKS
is cached and refetched when it ages out, or once for a ``kid`` it does not hold — at most
every ``oidc_jwks_refetch_seconds``, so a stream of made-up kids cannot turn the appliance
into a load generator against the issuer. Only asymmetric algorithms are accepted, from the
configured allow-list: never ``none``, never HS* (a public key used as an HMAC secret).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ...errors import InternalError, PermissionDenied, Unauthenticated
from ...settings import Settings
from .principal import ROLES

log = logging.getLogger(__name__)
FETCH_TIMEOUT_SECONDS = 5.0


class IssuerUnavailable(InternalError):
    code = "issuer_unavailable"
    http_status = 503


class OidcVerifier:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.issuer = settings.oidc_issuer or ""  # verbatim: `iss` must equal it exactly (OIDC Discovery §4.3)
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    # -- keys ------------------------------------------------------------------------------
    def _get_json(self, url: str) -> dict:
        try:
            response = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnavailable(f"the OIDC issuer could not be reached ({type(exc).__name__}); try again") from None

    def _refresh(self) -> KeySet:
        if self._jwks_uri is None:
            discovery = self._get_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.issuer:
                raise IssuerUnavailable("the OIDC discovery document names another issuer")
            self._jwks_uri = discovery.get("jwks_uri")
            if not self._jwks_uri:
                raise IssuerUnavailable("the OIDC discovery document has no jwks_uri")
        try:
            self._keys = KeySet.import_key_set(self._get_json(self._jwks_uri))
        except (JoseError, ValueError, TypeError):
            raise IssuerUnavailable("the issuer's JWKS could not be read") from None
        self._fetched_at = time.monotonic()
        return self._keys

    def keys(self, *, unknown_kid: bool = False) -> KeySet:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if self._keys is None or age > self.settings.oidc_jwks_cache_seconds:
                return self._refresh()
            if unknown_kid and age > self.settings.oidc_jwks_refetch_seconds:
                return self._refresh()
            return self._keys

    # -- tokens ----------------------------------------------------------------------------
    def _decode(self, raw: str) -> Any:
        algorithms = list(self.settings.oidc_algorithms)
        try:
            return jwt.decode(raw, self.keys(), algorithms=algorithms)
        except InvalidKeyIdError:
            try:
                return jwt.decode(raw, self.keys(unknown_kid=True), algorithms=algorithms)
            except JoseError as exc:
                raise Unauthenticated(f"invalid token: {_reason(exc)}") from None
        except JoseError as exc:
            raise Unauthenticated(f"invalid token: {_reason(exc)}") from None
        except (ValueError, TypeError):
            raise Unauthenticated("invalid token: not a JWT") from None

    def verify(self, raw: str) -> dict[str, Any]:
        """The token's claims, once its signature and registered claims hold."""
        token = self._decode(raw)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.oidc_leeway_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.settings.oidc_audience},
            exp={"essential": True}, nbf={"essential": False})
        try:
            registry.validate(token.claims)
        except JoseError as exc:  # expired, not yet valid, wrong iss/aud, missing claims
            raise Unauthenticated(f"invalid token: {_reason(exc)}") from None
        return token.claims

    def memberships(self, claims: dict[str, Any]) -> dict[str, str]:
        """{org: role} the token grants; unknown roles are ignored, never widened."""
        s = self.settings
        found: dict[str, str] = {}
        if s.oidc_groups_claim:
            groups = claims.get(s.oidc_groups_claim) or []
            for group in groups if isinstance(groups, list) else [groups]:
                if isinstance(group, str) and group.startswith(s.oidc_group_prefix):
                    org, _, role = group[len(s.oidc_group_prefix):].rpartition(":")
                    if org and role in ROLES and ROLES.index(role) >= ROLES.index(found.get(org, "viewer")):
                        found[org] = role
        else:
            org, role = claims.get(s.oidc_org_claim), claims.get(s.oidc_role_claim)
            if isinstance(org, str) and org and role in ROLES:
                found[org] = role
        if not found:
            raise PermissionDenied("the token grants no sqlrs org and role "
                                   f"(claims {s.oidc_groups_claim or s.oidc_org_claim + '/' + s.oidc_role_claim})")
        return found


def _reason(exc: Exception) -> str:
    """A short, secret-free reason (joserfc messages never echo the token)."""
    return getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
