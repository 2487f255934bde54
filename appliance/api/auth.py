"""Bearer-token authentication. Tokens are stored only as SHA-256 hashes.

The embedded default has one admin token, generated at first start and written to a 0600
file in the data dir; OIDC/JWT tenancy comes in front of this later without changing the
``(org, role)`` that handlers see.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..control.models import ApiToken, Org
from ..errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    org: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_admin_token(token_file: Path, org: str) -> str:
    """Return the admin token, creating the file (0600) and its hash row when missing."""
    Org.get_or_create(slug=org)
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = "sqlrs_" + secrets.token_urlsafe(32)
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    ApiToken.get_or_create(token_hash=hash_token(token),
                           defaults={"org": org, "role": "admin", "name": "admin (token file)"})
    return token


def create_token(org: str, name: str, role: str = "admin") -> str:
    """A new random token; the caller shows it once, the Control DB keeps only its hash."""
    Org.get_or_create(slug=org)
    token = "sqlrs_" + secrets.token_urlsafe(32)
    ApiToken.create(token_hash=hash_token(token), org=org, role=role, name=name)
    return token


def authenticate(authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("missing bearer token (Authorization: Bearer …)")
    presented = hash_token(authorization[7:].strip())
    row = ApiToken.get_or_none(ApiToken.token_hash == presented)
    if row is None or not hmac.compare_digest(row.token_hash, presented):
        raise Unauthenticated("invalid token")
    return Principal(org=row.org, role=row.role)
