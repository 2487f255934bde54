"""OIDC access tokens: signature against the issuer's JWKS, then iss/aud/exp/nbf, then claims
mapped onto orgs and roles.

The discovery document is read once (its ``issuer`` must equal the configured one); the JWKS
is cached and refetched when it ages out, or once for a ``kid`` it does not hold — at most
every ``oidc_jwks_refetch_seconds`` whatever the outcome, one fetch at a time, and never while
holding a lock, so neither a stream of made-up kids nor a hanging issuer can turn the appliance
into a load generator against the issuer or stall the requests that wait for it. Only asymmetric algorithms are accepted, from the
configured allow-list: never ``none``, never HS* (a public key used as an HMAC secret).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, cast

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from appliance.api.auth.principal import ROLES
from appliance.errors import InternalError, PermissionDenied, Unauthenticated
from appliance.settings import Settings

log = logging.getLogger(__name__)
FETCH_TIMEOUT_SECONDS = 5.0


class IssuerUnavailable(InternalError):
    code = "issuer_unavailable"
    http_status = 503


class OidcVerifier:
    """Verifies OIDC access tokens; thread-safe. Its lock guards a few fields and is never held
    across network I/O: one fetch of the issuer's keys is in flight at a time (the thread that
    started it does it, or a background thread for a refresh of aged keys), and the others use
    the keys they have, fail fast (an unknown ``kid``: 401) or, with no keys at all yet, wait
    for that one fetch."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.issuer = settings.oidc_issuer or ""  # verbatim: `iss` must equal it exactly (OIDC Discovery §4.3)
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0  # when the keys in hand were fetched
        self._attempted_at: float | None = None  # when the last fetch started, whatever came of it
        self._in_flight: threading.Event | None = None  # set when the fetch in progress ends

    # -- keys ------------------------------------------------------------------------------
    def _get_json(self, url: str) -> dict:
        try:
            response = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnavailable(f"the OIDC issuer could not be reached ({type(exc).__name__}); try again") from None

    def _download(self) -> KeySet:
        """The issuer's keys, read over the network: called with no lock held."""
        jwks_uri = self._jwks_uri
        if jwks_uri is None:
            discovery = self._get_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.issuer:
                raise IssuerUnavailable("the OIDC discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not jwks_uri or not isinstance(jwks_uri, str):
                raise IssuerUnavailable("the OIDC discovery document has no jwks_uri")
            self._jwks_uri = jwks_uri
        try:
            return KeySet.import_key_set(cast(Any, self._get_json(jwks_uri)))  # checked by joserfc itself
        except (JoseError, ValueError, TypeError):
            raise IssuerUnavailable("the issuer's JWKS could not be read") from None

    def _fetch(self, done: threading.Event) -> KeySet:
        try:
            keys = self._download()
            with self._lock:
                self._keys, self._fetched_at = keys, time.monotonic()
            return keys
        finally:
            with self._lock:
                self._in_flight = None
            done.set()

    def _refresh_in_background(self, done: threading.Event) -> None:
        def run() -> None:
            try:
                self._fetch(done)
            except IssuerUnavailable as exc:
                log.warning("could not refresh the OIDC issuer's keys (the cached ones stay in use): %s", exc.message)
        threading.Thread(target=run, name="sqlrs-oidc-refresh", daemon=True).start()

    def keys(self, *, unknown_kid: bool = False) -> KeySet:
        """The keys to verify with. A fetch starts only when none is in flight and the last one
        started at least ``oidc_jwks_refetch_seconds`` ago, whether it succeeded or not."""
        s = self.settings
        with self._lock:
            now = time.monotonic()
            keys, in_flight = self._keys, self._in_flight
            aged = keys is not None and now - self._fetched_at > s.oidc_jwks_cache_seconds
            throttled = self._attempted_at is not None and now - self._attempted_at < s.oidc_jwks_refetch_seconds
            mine = (keys is None or aged or unknown_kid) and in_flight is None and not throttled
            if mine:
                self._in_flight = in_flight = threading.Event()
                self._attempted_at = now
        if mine and keys is not None and not unknown_kid and in_flight is not None:
            self._refresh_in_background(in_flight)  # aged keys: keep serving them meanwhile
            return keys
        if mine and in_flight is not None:
            return self._fetch(in_flight)
        if keys is None:
            if in_flight is not None:  # the first fetch is under way: its result is the only way on
                in_flight.wait(2 * FETCH_TIMEOUT_SECONDS + 1)  # discovery, then the JWKS
                with self._lock:
                    keys = self._keys
            if keys is None:
                raise IssuerUnavailable("the OIDC issuer's keys could not be fetched; try again")
            return keys
        if unknown_kid:
            raise Unauthenticated("invalid token: unknown key id (the issuer's keys were checked recently)")
        return keys

    # -- tokens ----------------------------------------------------------------------------
    def _decode(self, raw: str) -> Any:
        algorithms = list(self.settings.oidc_algorithms)
        try:
            return jwt.decode(raw, self.keys(), algorithms=algorithms)
        except InvalidKeyIdError:  # perhaps a key the issuer rotated in: look once more, if allowed
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
            aud={"essential": True, "value": self.settings.oidc_audience or ""},  # required with an issuer
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
            claimed_org, claimed_role = claims.get(s.oidc_org_claim), claims.get(s.oidc_role_claim)
            if isinstance(claimed_org, str) and claimed_org and claimed_role in ROLES:
                found[claimed_org] = claimed_role
        if not found:
            raise PermissionDenied("the token grants no sqlrs org and role "
                                   f"(claims {s.oidc_groups_claim or s.oidc_org_claim + '/' + s.oidc_role_claim})")
        return found


def _reason(exc: Exception) -> str:
    """A short, secret-free reason (joserfc messages never echo the token)."""
    return getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
