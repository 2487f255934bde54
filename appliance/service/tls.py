"""TLS for the API: the site's certificate files, or a certificate of the appliance's own CA.

With ``tls_cert_file``/``tls_key_file`` the API serves the site's certificate. With
``tls_self_signed`` the appliance's CA (``appliance.certificates``: ``data_dir/tls/ca.crt``)
signs one for the names clients use (the hostname, its FQDN, localhost, the loopback addresses,
the listen address and ``tls_names``). Clients trust ``ca.crt`` (``sqlrs --ca-cert``,
``SQLRS_CA_CERT``): one file to copy to each client, which stays valid when the server
certificate is renewed (at start, within 30 days of its expiry) or reissued for new names.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from appliance.certificates import authority, fingerprint, general_name, issue_server, write_private, write_public
from appliance.errors import InvalidArgument
from appliance.settings import Settings

log = logging.getLogger(__name__)
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
    """The appliance's CA and a current API certificate for today's names (made as needed)."""
    ca = authority(settings.data_dir / "tls")
    folder = ca.cert_path.parent
    files = ServerFiles(folder / "api.crt", folder / "api.key", ca.cert_path)
    names = subject_names(settings)
    if _needs_new_cert(files.cert, files.key, names):
        issued = issue_server(ca, names)
        write_private(files.key, issued.key_pem)
        write_public(files.cert, issued.cert_pem)
        log.info("TLS: issued the API a certificate for %s, signed by %s (sha256 %s)", ", ".join(names), ca.cert_path,
                 fingerprint(ca.cert_path))
    return files


def subject_names(settings: Settings) -> list[str]:
    """The DNS names and addresses clients may reach the API by, sorted, without duplicates."""
    host = listen_host(settings.listen)
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn(), *settings.tls_names}
    if host not in ("", "0.0.0.0", "::"):
        names.add(host)
    return sorted(n for n in names if n)


def listen_host(listen: str) -> str:
    """The host part of ``host:port`` (``[::1]:7433`` too)."""
    return listen.rsplit(":", 1)[0].strip("[]")


def is_loopback(listen: str) -> bool:
    """Whether only this host can reach the address: where plain HTTP exposes no token."""
    host = listen_host(listen)
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _needs_new_cert(cert_path: Path, key_path: Path, names: list[str]) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_WITHIN:
        return True
    present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return not {general_name(n) for n in names} <= set(present)
