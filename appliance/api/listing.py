"""Lists answer a JSON array, or NDJSON (one object a line) when the client asks for it."""
from __future__ import annotations

import json
from typing import Any, Iterable

from quart import Response, request


def wants_ndjson() -> bool:
    return "application/x-ndjson" in request.headers.get("Accept", "")


def listing(items: Iterable[dict[str, Any]]) -> Response | list:
    items = list(items)
    if wants_ndjson():
        body = "".join(json.dumps(item) + "\n" for item in items)
        return Response(body, content_type="application/x-ndjson")
    return items
