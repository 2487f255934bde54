"""HTTPS on the API (`sqlrs-appliance api` with ``tls_self_signed``): the CLI completes a TLS
handshake when it trusts the appliance's CA, and refuses, saying how to fix it, when it does not."""
from __future__ import annotations

import multiprocessing
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from appliance.certificates import authority, fingerprint
from appliance.service.tls import ensure_own_ca
from appliance.settings import Settings


def sqlrs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SQLRS_")}
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**clean, "XDG_CONFIG_HOME": "/nonexistent", **(env or {})}, check=False)


def ca_of(served) -> str:
    return str(served.data_dir / "tls" / "ca.crt")


def test_the_cli_talks_to_an_https_appliance_it_trusts_through_ca_cert(served_api_tls):
    done = sqlrs("--url", served_api_tls.url, "--ca-cert", ca_of(served_api_tls), "--token", served_api_tls.token,
                 "--output", "json", "ls")
    assert done.returncode == 0, done.stderr


def test_the_ca_certificate_may_come_from_sqlrs_ca_cert(served_api_tls):
    done = sqlrs("ls", env={"SQLRS_URL": served_api_tls.url, "SQLRS_CA_CERT": ca_of(served_api_tls),
                            "SQLRS_TOKEN": served_api_tls.token})
    assert done.returncode == 0, done.stderr


def test_the_cli_refuses_an_appliance_whose_certificate_it_does_not_trust_and_says_how_to_fix_it(served_api_tls):
    done = sqlrs("--url", served_api_tls.url, "--token", served_api_tls.token, "ls")
    assert done.returncode != 0
    assert "does not trust" in done.stderr and "--ca-cert" in done.stderr
    assert served_api_tls.token not in done.stderr + done.stdout


def test_a_ca_cert_that_cannot_be_read_is_a_usage_error(served_api_tls, tmp_path):
    done = sqlrs("--url", served_api_tls.url, "--ca-cert", str(tmp_path / "missing.crt"), "--token",
                 served_api_tls.token, "ls")
    assert done.returncode == 2 and "cannot load the CA certificate" in done.stderr


def test_the_served_certificate_chains_to_the_appliance_ca_and_names_the_loopback_address(served_api_tls):
    context = ssl.create_default_context(cafile=ca_of(served_api_tls))
    with socket.create_connection(("127.0.0.1", served_api_tls.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(served_api_tls):
    context = ssl.create_default_context(cafile=ca_of(served_api_tls))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", served_api_tls.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_plain_http_to_the_https_port_gets_no_api_answer(served_api_tls):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{served_api_tls.port}/v1/health", timeout=5).raise_for_status()


def test_private_keys_are_readable_by_their_owner_only_and_the_ca_by_anyone(served_api_tls):
    folder = served_api_tls.data_dir / "tls"
    assert oct((folder / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((folder / "api.key").stat().st_mode & 0o777) == "0o600"
    assert oct((folder / "ca.crt").stat().st_mode & 0o777) == "0o644"


def test_the_ca_survives_restarts_and_new_names_reissue_only_the_server_certificate(tmp_path):
    settings = Settings(data_dir=tmp_path, tls_self_signed=True)
    first = ensure_own_ca(settings)
    ca_before, server_before = fingerprint(first.ca), fingerprint(first.cert)
    again = ensure_own_ca(settings)
    assert (fingerprint(again.ca), fingerprint(again.cert)) == (ca_before, server_before)
    renamed = ensure_own_ca(settings.model_copy(update={"tls_names": ["sqlrs.example.internal"]}))
    assert fingerprint(renamed.ca) == ca_before and fingerprint(renamed.cert) != server_before
    served = x509.load_pem_x509_certificate(renamed.cert.read_bytes())
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sqlrs.example.internal" in names.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("settings, problem", [
    ({"tls_cert_file": "/etc/ssl/api.crt"}, "tls_cert_file and tls_key_file go together"),
    ({"tls_cert_file": "/a.crt", "tls_key_file": "/a.key", "tls_self_signed": True}, "unset it"),
    ({"tls_names": ["bad name"]}, "tls_names must be DNS names"),
])
def test_tls_settings_that_cannot_work_are_refused_at_start(settings, problem):
    with pytest.raises(ValueError, match=problem):
        Settings(**settings)


def _authority_fingerprint(folder: str) -> str:
    from appliance.certificates import authority
    ca = authority(Path(folder))
    return fingerprint(ca.cert_path)


def test_processes_making_the_ca_at_once_agree_on_one_whose_key_matches(tmp_path):
    """The API, the reconciler and the workers may all need the CA first: one of them makes it.
    Ten fresh folders, each asked for by six processes at once."""
    folders = [str(tmp_path / f"tls-{n}") for n in range(10)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        seen = pool.map(_authority_fingerprint, [f for f in folders for _ in range(6)], chunksize=1)
    assert all(len(set(seen[6 * n:6 * n + 6])) == 1 for n in range(10)), seen
    for folder in folders:
        ca = authority(Path(folder))
        assert ca.cert.public_key() == ca.key.public_key()
