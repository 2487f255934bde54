"""Serves the web console's files (``appliance.console``) under ``/ui/``, with a strict CSP.

The files are public, like any sign-in page: they hold no data. The console reads and changes
everything through the v1 API with the signed-in principal's bearer token.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import mimetypes
import re
from urllib.parse import urlsplit

from quart import Blueprint, Response, redirect
from quart_schema import hide

from appliance.api.app import context
from appliance.console import STATIC
from appliance.errors import NotFound
from appliance.settings import ORIGIN

blueprint = Blueprint("console", __name__)
_INLINE_SCRIPT = re.compile(r"<script type=\"importmap\">(.*?)</script>", re.S)
_TYPES = {".mjs": "text/javascript", ".html": "text/html; charset=utf-8"}  # the rest: mimetypes knows them


@functools.cache
def _files() -> dict[str, bytes]:
    """Every console file by its name under /ui/: the only names served (nothing else touches the disk)."""
    return {path.relative_to(STATIC).as_posix(): path.read_bytes() for path in sorted(STATIC.rglob("*"))
            if path.is_file() and not path.name.startswith(".")}


@functools.cache
def _index() -> tuple[bytes, str]:
    """index.html and the hash of its one inline script (the import map), for the CSP."""
    html = _files()["index.html"].decode()
    (importmap,) = _INLINE_SCRIPT.findall(html)
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    return html.encode(), f"'sha256-{digest}'"


def _connect_sources() -> str:
    """This origin, and with the console's OIDC client the issuer's origin and any the operator
    added (a token endpoint elsewhere); settings validate those as bare origins."""
    settings = context().settings
    sources = ["'self'"]
    if settings.oidc_issuer and settings.oidc_client_id:
        parts = urlsplit(settings.oidc_issuer)
        issuer = f"{parts.scheme}://{parts.netloc}"
        sources += [*([issuer] if ORIGIN.fullmatch(issuer) else []), *settings.oidc_connect_origins]
    return " ".join(dict.fromkeys(sources))


def _headers(response: Response) -> Response:
    """No inline code but the import map, no framing, no referrer (URLs carry job ids), and
    network access to this origin and the OIDC issuer only."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {_index()[1]}; style-src 'self'; img-src 'self' data:; "
        f"connect-src {_connect_sources()}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-cache"  # revalidated each load: an upgrade is seen at once
    return response


@blueprint.get("/ui")
@hide
async def console_root():
    return redirect("/ui/", 308)


@blueprint.get("/ui/")
@hide
async def console_index():
    return _headers(Response(_index()[0], content_type=_TYPES[".html"]))


@blueprint.get("/ui/<path:name>")
@hide
async def console_file(name: str):
    body = _files().get(name)
    if body is None:
        raise NotFound(f"no console file {name[:100]!r}")
    suffix = "." + name.rpartition(".")[2]
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _headers(Response(body, content_type=kind))
