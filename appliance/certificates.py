"""The appliance's own certificate authorities, and the server certificates they sign.

Two CAs per data dir (``data_dir/tls``), each a ``<name>.crt`` for anyone to trust and a
``<name>.key`` (0600): ``ca`` signs the API's certificate (``tls_self_signed``), what API clients
trust; ``instances-ca`` signs one certificate per instance start (``instance_tls``). They are
apart because an instance's owner is superuser in it and can read its key: a certificate the
API's clients trust must never be in a tenant's hands. ECDSA P-256 throughout: a key and a
signature take well under a millisecond, so an instance's certificate costs nothing measurable
at its start. A CA is made once, under a lock, by whichever process needs it first.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate


@dataclass(frozen=True)
class Authority:
    cert_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


API_CA = "ca"
INSTANCES_CA = "instances-ca"


def authority(folder: Path, name: str = API_CA) -> Authority:
    """The CA ``name`` kept in ``folder`` (made on first use; readable ``.crt``, private ``.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)  # clients on this host may read a .crt by its name; nobody lists the keys
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    if not cert_path.exists() or not key_path.exists():
        with _locked(folder):
            if not cert_path.exists() or not key_path.exists():
                _write_ca(cert_path, key_path, name)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        raise ValueError(f"{key_path} is not the key of {cert_path}: remove both and a new CA is made")
    return Authority(cert_path, cert, key)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One maker of a CA at a time, across processes (the API, the reconciler, the workers)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def issue_server(ca: Authority, names: list[str], days: float = SERVER_DAYS) -> Issued:
    """A server certificate for ``names`` (DNS names or IP addresses; the first is its CN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([general_name(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def write_private(path: Path, data: bytes) -> None:
    """Written as 0600 from the start, then renamed into place: never readable by others, never half-written."""
    temp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    temp.replace(path)


def write_public(path: Path, data: bytes) -> None:
    temp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    temp.write_bytes(data)
    temp.chmod(0o644)
    temp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_ca(cert_path: Path, key_path: Path, purpose: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    title = "sqlrs appliance CA" if purpose == API_CA else "sqlrs instances CA"
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sqlrs appliance"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{title} ({socket.gethostname()})"[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(key_path, _key_pem(key))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
