"""Lists answer a JSON array, or NDJSON (one object a line) when the client asks for it; the shapes
every list route shares (rows built off the event loop, pages, an id-prefix filter) live here."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from quart import Response, request

from appliance.api import paging
from appliance.api.app import call


def wants_ndjson() -> bool:
    return "application/x-ndjson" in request.headers.get("Accept", "")


def listing(items: Iterable[dict[str, Any]]) -> Response | list:
    items = list(items)
    if wants_ndjson():
        body = "".join(json.dumps(item) + "\n" for item in items)
        return Response(body, content_type="application/x-ndjson")
    return items


async def listed(rows: Callable[[], Iterable[dict[str, Any]]]) -> Response | list:
    """Build the rows off the event loop (they read the Control DB), then answer them as a list."""
    return listing(await call(rows))


async def paged(rows: Callable[[], tuple[list[dict[str, Any]], str | None]], args: paging.PageQuery) -> Response:
    """Build one page off the event loop (``rows`` answers it and the next page's cursor), then
    answer it with the next page's address (see ``paging``)."""
    items, next_cursor = await call(rows)
    return paging.paged_response(items, next_cursor, args)


def page_of(query, columns, key_of, args: paging.PageQuery, serialize: Callable[[Any], dict[str, Any]]):
    """``rows`` for :func:`paged`: one keyset page of ``query`` (see ``paging.page``), serialized."""
    def rows() -> tuple[list[dict[str, Any]], str | None]:
        page = paging.page(query, columns, key_of, args, args.model_dump())
        return [serialize(row) for row in page.rows], page.next_cursor
    return rows


def with_id_prefix(query, column, prefix: str | None):
    """``query`` narrowed to rows whose id ``column`` starts with ``prefix`` (ids are lowercase hex;
    a prefix may be typed in either case); no prefix: ``query`` as it is."""
    return query.where(column.startswith(prefix.lower())) if prefix else query
