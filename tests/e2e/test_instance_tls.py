"""``instance_tls``: instances serve TLS under the host's instances CA (never the API's) and their DSNs ask for it."""
from __future__ import annotations

import subprocess
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.certificates import authority
from tests.support.appliance import appliance_on
from tests.support.polling import wait_until
from tests.support.psql import ssl_in_use


@pytest.fixture(scope="module")
def appliance(request):
    yield from appliance_on(request, "btrfs", {"SQLRS_INSTANCE_TLS": "true"})


def test_a_prepared_instances_dsn_requires_tls_and_gets_it(appliance, scripts):
    dsn = appliance.prepare(["-f", "schema.sql"], scripts)["result"]["dsn"]
    assert parse_qs(urlsplit(dsn).query)["sslmode"] == ["require"]
    assert ssl_in_use(dsn) is True


def test_a_client_may_verify_the_instance_against_the_instances_ca(appliance, scripts):
    dsn = appliance.prepare(["-f", "schema.sql"], scripts)["result"]["dsn"]
    ca = appliance.data_dir / "tls" / "instances-ca.crt"
    assert ssl_in_use(dsn, sslmode="verify-full", sslrootcert=str(ca)) is True


def test_the_key_an_instances_owner_can_read_is_not_trusted_by_the_apis_clients(appliance, scripts):
    """The owner is superuser in the instance and reads its key; the CA API clients trust
    (``tls/ca.crt``) must not have signed it, or they could pose as the API."""
    dsn = appliance.prepare(["-f", "schema.sql"], scripts)["result"]["dsn"]
    api_ca = authority(appliance.data_dir / "tls")  # made by now, or made here: either way the API's
    with psycopg2.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute("select pg_read_file(current_setting('ssl_cert_file'))")
        (served,) = cur.fetchone()
    conn.close()
    leaf = x509.load_pem_x509_certificate(served.encode())
    assert leaf.issuer != api_ca.cert.subject
    with pytest.raises(InvalidSignature):
        api_ca.cert.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))


def test_an_instance_revived_after_its_postgres_died_still_serves_tls(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    dsn, port = status["result"]["dsn"], urlsplit(status["result"]["dsn"]).port
    volume = next(p for p in (appliance.data_dir / "store" / "orgs").glob("*/volumes/*")
                  if (p / "pgdata" / "postmaster.pid").exists()
                  and int((p / "pgdata" / "postmaster.pid").read_text().splitlines()[3]) == port)
    postmaster = int((volume / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    subprocess.run(["kill", "-9", str(postmaster)], check=True)
    wait_until(lambda: _answers(dsn), 60, "the instance to answer again")
    assert ssl_in_use(dsn) is True


def _answers(dsn: str) -> bool:
    try:
        return ssl_in_use(dsn)
    except psycopg2.OperationalError:
        return False
