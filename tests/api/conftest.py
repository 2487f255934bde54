"""The API in-process (Quart test client, fixture `client` in tests/conftest.py) on a real
Control DB (SQLite and PostgreSQL), real Redis, a real store on disk and the host's Postgres
binaries. No worker runs here: these tests are about admission, validation and the contract,
not execution (see tests/e2e)."""
from __future__ import annotations

import pytest

from appliance.api.app import create_app
from tests.support.api import serve_api
from tests.support.oidc import AUDIENCE, LocalIssuer


@pytest.fixture(scope="session")
def issuer():
    """A local OIDC issuer on loopback with keys generated for this run."""
    server = LocalIssuer()
    yield server
    server.stop()


@pytest.fixture
def oidc_client(ctx, token, issuer):
    """The API with OIDC on (against the local issuer), plus the operator token."""
    ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE})
    client = create_app(ctx).test_client()
    client.auth = {"Authorization": f"Bearer {token}"}
    return client


# -- the API really served by hypercorn (`sqlrs-appliance api`), for what only a server shows ------

@pytest.fixture(scope="module")
def served_api(tmp_path_factory, redis_url):
    yield from serve_api(tmp_path_factory.mktemp("served-api") / "data", redis_url)


@pytest.fixture(scope="module")
def served_api_tls(tmp_path_factory, redis_url):
    """The same, on HTTPS with the appliance's own CA (``tls_self_signed``)."""
    yield from serve_api(tmp_path_factory.mktemp("served-api-tls") / "data", redis_url,
                         {"SQLRS_TLS_SELF_SIGNED": "true"})
