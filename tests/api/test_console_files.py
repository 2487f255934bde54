"""The console's files as the API serves them: public, their own strict Content-Security-Policy,
only files of the package (no path leaves it), and vendored modules exactly as pinned."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from appliance.api.app import create_app
from appliance.console import STATIC
from tests.support.oidc import AUDIENCE

VENDOR = STATIC / "vendor"


async def test_the_console_is_served_without_a_token_while_the_api_still_needs_one(client):
    index = await client.get("/ui/")
    assert index.status_code == 200 and "text/html" in index.headers["Content-Type"]
    assert (await client.get("/v1/states")).status_code == 401


async def test_ui_without_a_slash_redirects_to_the_console(client):
    response = await client.get("/ui")
    assert response.status_code == 308 and response.headers["Location"].endswith("/ui/")


async def test_the_csp_allows_this_origins_scripts_and_the_import_map_by_its_hash_only(client):
    response = await client.get("/ui/")
    csp = response.headers["Content-Security-Policy"]
    importmap = re.search(r'<script type="importmap">(.*?)</script>', await response.get_data(as_text=True), re.S)[1]
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self';" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_with_the_consoles_oidc_client_the_csp_lets_the_page_reach_the_issuer_only(ctx):
    ctx.settings = ctx.settings.model_copy(update={"oidc_issuer": "https://id.example.com/realms/x",
                                                   "oidc_audience": AUDIENCE, "oidc_client_id": "console"})
    csp = (await create_app(ctx).test_client().get("/ui/")).headers["Content-Security-Policy"]
    assert "connect-src 'self' https://id.example.com;" in csp


async def test_the_operators_extra_origins_join_the_issuers_in_connect_src(ctx):
    ctx.settings = ctx.settings.model_copy(update={
        "oidc_issuer": "https://accounts.example.com", "oidc_audience": AUDIENCE, "oidc_client_id": "console",
        "oidc_connect_origins": ["https://oauth2.example.com"]})
    csp = (await create_app(ctx).test_client().get("/ui/")).headers["Content-Security-Policy"]
    assert "connect-src 'self' https://accounts.example.com https://oauth2.example.com;" in csp


async def test_every_module_the_console_loads_is_served_as_javascript(client):
    html = await (await client.get("/ui/")).get_data(as_text=True)
    loaded = set(re.findall(r'"\./([^"]+\.mjs)"', html)) | set(re.findall(r'src="\./([^"]+)"', html))
    for source in STATIC.rglob("*.mjs"):
        loaded |= {re.sub(r"^\./", "", m) if not m.startswith("../") else m[3:]
                   for m in re.findall(r'from "(\./[^"]+|\.\./[^"]+)"', source.read_text())}
    assert {"app.mjs", "vendor/preact.mjs", "vendor/hooks.mjs", "vendor/htm.mjs"} <= loaded
    for name in loaded:
        response = await client.get(f"/ui/{name}")
        assert response.status_code == 200 and response.headers["Content-Type"] == "text/javascript", name


@pytest.mark.parametrize("path", ["/ui/../openapi.json", "/ui/%2e%2e/__init__.py", "/ui/..%2f__init__.py",
                                  "/ui/vendor/../../__init__.py", "/ui/.hidden", "/ui/pages/", "/ui/nope.js",
                                  "/ui//etc/passwd", "/ui/a%00b", "/ui/" + "a" * 300, "/ui/app.mjs/x"])
async def test_no_path_reaches_a_file_outside_the_consoles_files(client, path):
    response = await client.get(path)
    assert response.status_code in (404, 308), path
    body = await response.get_data()
    assert b"import" not in body and b"root:" not in body


def test_the_vendored_modules_are_exactly_the_pinned_ones():
    pinned = {}
    for line in (VENDOR / "VENDORED").read_text().splitlines():
        if line and not line.startswith("#"):
            _package, _version, _inner, name, sha256 = line.split()
            pinned[name] = sha256
    present = {p.name for p in VENDOR.iterdir()} - {"VENDORED"}
    assert present == set(pinned)
    for name, sha256 in pinned.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha256, name
