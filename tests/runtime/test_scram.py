"""SCRAM verifiers must be exactly what Postgres would compute (RFC 5802 / RFC 7677)."""
from __future__ import annotations

import base64
import hashlib
import hmac

from appliance.runtime.scram import saslprep, scram_sha256_verifier

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_AUTH_MESSAGE = (
    b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
)
RFC_CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _keys(verifier: str) -> tuple[bytes, bytes]:
    stored, server = verifier.rsplit("$", 1)[1].split(":")
    return base64.b64decode(stored), base64.b64decode(server)


def test_the_verifier_accepts_the_client_proof_of_rfc_7677():
    stored_key, _ = _keys(scram_sha256_verifier("pencil", salt=RFC_SALT))
    signature = hmac.new(stored_key, RFC_AUTH_MESSAGE, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(RFC_CLIENT_PROOF, signature))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_the_verifier_yields_the_server_signature_of_rfc_7677():
    _, server_key = _keys(scram_sha256_verifier("pencil", salt=RFC_SALT))
    assert hmac.new(server_key, RFC_AUTH_MESSAGE, hashlib.sha256).digest() == RFC_SERVER_SIGNATURE


def test_the_verifier_has_the_format_postgres_stores():
    verifier = scram_sha256_verifier("pencil")
    scheme, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    assert (scheme, iterations) == ("SCRAM-SHA-256", "4096")
    assert len(base64.b64decode(salt)) == 16
    assert [len(k) for k in _keys(verifier)] == [32, 32]


def test_the_verifier_does_not_contain_the_password():
    password = "Plaintext-Password-42"
    verifier = scram_sha256_verifier(password)
    assert password not in verifier
    assert base64.b64encode(password.encode()).decode().rstrip("=") not in verifier


def test_two_verifiers_of_one_password_use_different_salts():
    assert scram_sha256_verifier("pencil") != scram_sha256_verifier("pencil")


def test_saslprep_leaves_ascii_passwords_unchanged():
    assert saslprep("p\tass word\x01") == "p\tass word\x01"


def test_saslprep_maps_non_ascii_spaces_and_normalises():
    assert saslprep("I\u00adX\u00a0\u2168") == "IX IX"
