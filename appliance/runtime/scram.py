"""SCRAM-SHA-256 password verifiers (RFC 5802 / RFC 7677), computed in Python.

Postgres accepts a ready verifier in ``ALTER ROLE … PASSWORD``; building it here means the
plaintext never reaches the server, its logs, or any argv.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata

ITERATIONS = 4096
SALT_BYTES = 16


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>``, the format pg_authid stores."""
    if not isinstance(password, str) or password == "":
        raise ValueError("password must be a non-empty string")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    salted = salted_password(password, salt, iterations)
    stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
    server_key = _hmac(salted, b"Server Key")
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802, normalised the way Postgres does."""
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)


def saslprep(password: str) -> str:
    """SASLprep (RFC 4013) with Postgres's leniency: ASCII passes through unchanged, and a
    password SASLprep rejects is used as-is (Postgres and libpq do the same on both sides,
    so the verifier must too or such passwords could never log in)."""
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    normalised = unicodedata.normalize("NFKC", mapped)
    if not normalised or any(_prohibited(ch) for ch in normalised):
        return password
    if any(stringprep.in_table_d1(ch) for ch in normalised):
        if any(stringprep.in_table_d2(ch) for ch in normalised):
            return password
        if not (stringprep.in_table_d1(normalised[0]) and stringprep.in_table_d1(normalised[-1])):
            return password
    return normalised


def _prohibited(ch: str) -> bool:
    return any(
        check(ch)
        for check in (
            stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
            stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
            stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
            stringprep.in_table_c9, stringprep.in_table_a1,
        )
    )


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
