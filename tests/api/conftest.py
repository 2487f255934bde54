"""The API in-process (Quart test client) on a real Control DB (SQLite and PostgreSQL), real
Redis, a real store on disk and the host's Postgres binaries. No worker runs here: these
tests are about admission, validation and the contract, not execution (see tests/e2e)."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from appliance.api.app import create_app
from appliance.api.auth import ensure_admin_token
from appliance.context import build_context
from appliance.control.db import close_database
from appliance.control.migrations import migrate
from appliance.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path, control_db_url: str, redis_url: str, redis):
    settings = Settings(data_dir=tmp_path / "data", database_url=control_db_url, redis_url=redis_url,
                        storage_backend="copy", btrfs_image="off", max_bundle_bytes=256 * 1024,
                        max_bundle_files=50)
    context = build_context(settings)
    migrate(context.db)
    yield context
    close_database(context.db)


@pytest.fixture
def token(ctx) -> str:
    return ensure_admin_token(ctx.settings.admin_token_file, ctx.settings.default_org)


@pytest.fixture
def client(ctx, token):
    app = create_app(ctx)
    client = app.test_client()
    client.auth = {"Authorization": f"Bearer {token}"}
    return client


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
