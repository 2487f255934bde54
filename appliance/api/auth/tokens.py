"""API tokens: random bearer secrets stored only as SHA-256 hashes, scoped to an org and role.

Operator tokens (the embedded default's token file, ``sqlrs-appliance token``) are global
admins and never expire. Org admins create tokens for robots through the API: shown once,
expiring, revocable, with the time of their last use.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from appliance.api.auth.principal import ROLES, Principal
from appliance.control.models import ApiToken, Org, utcnow
from appliance.errors import InvalidArgument, NotFound, Unauthenticated
from appliance.ids import valid_org

PREFIX = "sqlrs_"
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)  # at most one write per token per minute


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)


def ensure_admin_token(token_file: Path, org: str) -> str:
    """Return the operator token, creating the file (0600) and its hash row when missing."""
    org = valid_org(org)
    Org.get_or_create(slug=org)
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = _new_secret()
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    ApiToken.get_or_create(token_hash=hash_token(token),
                           defaults={"org": org, "role": "admin", "name": "admin (token file)",
                                     "token_id": _new_token_id(), "global_admin": True, "created_by": "operator"})
    return token


def create_token(org: str, name: str, role: str = "admin") -> str:
    """An operator token (global admin, no expiry) for `sqlrs-appliance token`; shown once."""
    org = valid_org(org)
    Org.get_or_create(slug=org)
    token = _new_secret()
    ApiToken.create(token_hash=hash_token(token), token_id=_new_token_id(), org=org, role=role, name=name,
                    global_admin=True, created_by="operator")
    return token


def issue_token(org: str, *, name: str, role: str, ttl_seconds: int, created_by: str) -> tuple[ApiToken, str]:
    """An org-scoped token for a robot; returns the row and the secret (never stored)."""
    org = valid_org(org)
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = _new_secret()
    row = ApiToken.create(token_hash=hash_token(token), token_id=_new_token_id(), org=org, role=role, name=name,
                          created_by=created_by, expires_at=utcnow() + dt.timedelta(seconds=ttl_seconds))
    return row, token


def org_tokens(org: str) -> list[ApiToken]:
    return list(ApiToken.select().where((ApiToken.org == org) & (ApiToken.global_admin == False))  # noqa: E712
                .order_by(ApiToken.created_at))


def revoke(org: str, token_id: str) -> ApiToken:
    row = ApiToken.get_or_none((ApiToken.org == org) & (ApiToken.token_id == token_id)
                               & (ApiToken.global_admin == False))  # noqa: E712 (operator tokens: CLI only)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.save()
    return row


def verify_api_token(secret: str) -> Principal:
    presented = hash_token(secret)
    row = ApiToken.get_or_none(ApiToken.token_hash == presented)
    if row is None or not hmac.compare_digest(row.token_hash, presented):
        raise Unauthenticated("invalid token")
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthenticated("token revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("token expired")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return Principal(subject=f"token:{row.token_id}", org=row.org, role=row.role, via="api_token",
                     token_id=row.token_id, global_admin=row.global_admin)
