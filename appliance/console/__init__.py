"""The web console: a static single-page app the API process serves under ``/ui/``.

It holds files only (``static/``): HTML, CSS, our own ES modules and the vendored Preact, its
hooks and htm (``static/vendor``, pinned in ``VENDORED``, refreshed by ``scripts/vendor-console``).
Everything the console shows or does goes through the public v1 API with the signed-in
principal's bearer token, exactly as any other client; nothing is fetched from elsewhere.

May import: nothing of the appliance (``appliance.api.routes.console`` serves these files).
"""
from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
