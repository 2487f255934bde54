"""The installation's signing key, and the signatures that prove where a manifest comes from.

One ed25519 key per installation (``Settings.signing_key_path``, PEM, 0600), made on first use
with its public key beside it (``<key>.pub``: base64 of the raw 32 bytes, the form
``trusted_keys`` takes). A manifest is signed over its canonical serialization without the
``signature`` field (``canonical``: JSON, keys sorted, no spaces, ASCII), which is then
``{"algorithm": "ed25519", "key_id": ..., "value": <base64 signature>}``; ``key_id`` is the first
16 hex digits of the SHA-256 of the raw public key. A verifier trusts its own installation's
key and the ``trusted_keys`` setting, nothing else.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import InternalError, InvalidArgument, ManifestRefused

if TYPE_CHECKING:
    from appliance.settings import Settings

ALGORITHM = "ed25519"


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a signature covers: everything but the signature, in one spelling."""
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_text(key: Ed25519PublicKey) -> str:
    """The form ``trusted_keys`` takes: base64 of the raw 32-byte key."""
    return base64.b64encode(raw_public(key)).decode()


def parse_public(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"trusted key {text[:16]!r}… is not base64 of a raw 32-byte ed25519 key") from None


def signing_key(settings: Settings, *, create: bool = True) -> Ed25519PrivateKey:
    """The installation's private key, made (0600, never replacing another) when missing."""
    path = settings.signing_key_path
    try:
        return _load(path)
    except FileNotFoundError:
        if not create:
            raise
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _load(path)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    _write_public(path, key.public_key())
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise InternalError(f"the signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InternalError(f"the signing key {path} is not an ed25519 key")
    public = Path(f"{path}.pub")
    if not public.exists():
        _write_public(path, key.public_key())
    return key


def _write_public(path: Path, key: Ed25519PublicKey) -> None:
    public = Path(f"{path}.pub")
    tmp = public.with_name(public.name + f".{os.getpid()}")
    tmp.write_text(public_text(key) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, public)


def own_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """This installation's public key, from ``<key>.pub`` (readable by an unprivileged API) or
    the key itself; None before the first export made one."""
    path = settings.signing_key_path
    try:
        return parse_public(Path(f"{path}.pub").read_text())
    except (FileNotFoundError, PermissionError):
        pass
    try:
        return _load(path).public_key()
    except (FileNotFoundError, PermissionError):
        return None


def trusted(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """key id -> key: this installation's own key and ``trusted_keys``."""
    keys = [parse_public(text) for text in settings.trusted_keys]
    own = own_public_key(settings)
    if own is not None:
        keys.append(own)
    return {key_id(k): k for k in keys}


def sign(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``body`` with its signature."""
    value = key.sign(canonical(body))
    return {**{k: v for k, v in body.items() if k != "signature"},
            "signature": {"algorithm": ALGORITHM, "key_id": key_id(key.public_key()),
                          "value": base64.b64encode(value).decode()}}


def verify(body: dict[str, Any], settings: Settings, where: str) -> None:
    """Refuse a manifest that is unsigned (unless allowed), signed by a key not trusted, or
    altered after signing."""
    signature = body.get("signature")
    if signature is None:
        if settings.allow_unsigned_imports:
            return
        raise ManifestRefused("unsigned_manifest", f"the manifest {where} is not signed; export the state again on "
                              "its installation (or set allow_unsigned_imports)", {"manifest": where})
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM \
            or not isinstance(signature.get("key_id"), str) or not isinstance(signature.get("value"), str):
        raise ManifestRefused("bad_signature", f"the manifest {where} has a malformed signature",
                              {"manifest": where})
    key = trusted(settings).get(signature["key_id"])
    if key is None:
        raise ManifestRefused("untrusted_signature",
                              f"the manifest {where} is signed by key {signature['key_id']}, which this installation "
                              "does not trust (trusted_keys)", {"manifest": where, "key_id": signature["key_id"]})
    try:
        key.verify(base64.b64decode(signature["value"], validate=True), canonical(body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise ManifestRefused("bad_signature", f"the manifest {where} does not match its signature: it was altered "
                              "after it was signed", {"manifest": where, "key_id": signature["key_id"]}) from None
