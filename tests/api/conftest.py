"""The API in-process (Quart test client, fixture `client` in tests/conftest.py) on a real
Control DB (SQLite and PostgreSQL), real Redis, a real store on disk and the host's Postgres
binaries. No worker runs here: these tests are about admission, validation and the contract,
not execution (see tests/e2e)."""
from __future__ import annotations

import io
import tarfile


def make_tarball(entries: list[tuple[str, bytes | None, dict]]) -> bytes:
    """(name, content or None, TarInfo overrides) → tar.gz bytes, for crafting bad bundles."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content, overrides in entries:
            info = tarfile.TarInfo(name)
            for key, value in overrides.items():
                setattr(info, key, value)
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buffer.getvalue()


import pytest  # noqa: E402

from appliance.api.app import create_app  # noqa: E402
from tests.support.oidc import AUDIENCE, LocalIssuer  # noqa: E402


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
