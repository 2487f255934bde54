"""TLS for the API: the site's certificate files, or the appliance's own CA.

With ``tls_cert_file``/``tls_key_file`` the API serves the site's certificate. With
``tls_self_signed`` it makes, once, a CA of its own in ``data_dir/tls`` (``ca.crt``, and
``ca.key`` readable by root only) and with it a certificate for the names clients use (the
hostname, its FQDN, localhost, the loopback addresses, the listen address and ``tls_names``).
Clients trust ``ca.crt`` (``sqlrs --ca-cert``, ``SQLRS_CA_CERT``): one file to copy to each
client, which stays valid when the server certificate is renewed (at start, within 30 days of
its expiry) or reissued for new names.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.errors import InvalidArgument
from appliance.settings import Settings

log = logging.getLogger(__name__)
CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_WITHIN = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServerFiles:
    cert: Path
    key: Path
    ca: Path | None  # the appliance's own CA, for clients to trust; None with the site's files


def server_files(settings: Settings) -> ServerFiles | None:
    """What the API serves TLS with, or None for plain HTTP."""
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        for path in (settings.tls_cert_file, settings.tls_key_file):
            if not path.is_file():
                raise InvalidArgument(f"TLS file {path} does not exist or is not a file")
        return ServerFiles(settings.tls_cert_file, settings.tls_key_file, None)
    if settings.tls_self_signed:
        return ensure_own_ca(settings)
    return None


def ensure_own_ca(settings: Settings) -> ServerFiles:
    """The appliance's CA and a current server certificate for today's names (made as needed)."""
    folder = settings.data_dir / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)  # clients on this host may read ca.crt by its name; nobody lists the keys
    files = ServerFiles(folder / "api.crt", folder / "api.key", folder / "ca.crt")
    assert files.ca is not None
    if not files.ca.exists() or not (folder / "ca.key").exists():
        _write_ca(files.ca, folder / "ca.key")
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    names = subject_names(settings)
    if _needs_new_server_cert(files.cert, files.key, names):
        _write_server_cert(files.cert, files.key, ca_cert, ca_key, names)
        log.info("TLS: issued the API a certificate for %s, signed by %s (sha256 %s)", ", ".join(names), files.ca,
                 fingerprint(files.ca))
    return files


def subject_names(settings: Settings) -> list[str]:
    """The DNS names and addresses clients may reach the API by, sorted, without duplicates."""
    host = settings.listen.rsplit(":", 1)[0].strip("[]")
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn(), *settings.tls_names}
    if host not in ("", "0.0.0.0", "::"):
        names.add(host)
    return sorted(n for n in names if n)


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_private(path: Path, data: bytes) -> None:
    """Written as 0600 from the start, then renamed into place: never readable by others, never half-written."""
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    temp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    temp.chmod(0o644)
    temp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_ca(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sqlrs appliance"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"sqlrs appliance CA ({socket.gethostname()})")])
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
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _needs_new_server_cert(cert_path: Path, key_path: Path, names: list[str]) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_WITHIN:
        return True
    present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return not {_general_name(n) for n in names} <= set(present)


def _write_server_cert(cert_path: Path, key_path: Path, ca_cert: x509.Certificate,
                       ca_key: ec.EllipticCurvePrivateKey, names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
