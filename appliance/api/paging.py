"""Pages of a list: ``limit`` rows at a time, and an opaque cursor for the next page.

Keyset paging: a list is ordered by a key that ends in a unique column, and the next page starts
after the last row's key (``WHERE key > last``), so a page costs the same at any depth and rows
added meanwhile never shift a page. The cursor holds that key and a fingerprint of the route
and its filters; it is base64url JSON, which clients must treat as opaque. A cursor that does
not decode, or was made for another list or other filters, is refused (400 ``invalid_cursor``).

The answer's body is the page (a JSON array, or NDJSON); a next page is announced by
``Link: <…>; rel="next"`` and ``Sqlrs-Next-Cursor``, which the last page does not carry.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import peewee as pw
from pydantic import BaseModel, Field
from quart import Response, request

from appliance.errors import InvalidCursor

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
NEXT_CURSOR_HEADER = "Sqlrs-Next-Cursor"


class PageQuery(BaseModel):
    """The query parameters every list takes."""
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Rows per page (1–{MAX_LIMIT})")
    cursor: str | None = Field(None, max_length=1024,
                               description="Where the page starts: the `Sqlrs-Next-Cursor` of the previous page")


class OrderedPageQuery(PageQuery):
    """A list that also pages newest first."""
    order: Literal["asc", "desc"] = Field("asc", description="`asc`: oldest first; `desc`: newest first")


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def fingerprint(filters: dict[str, Any]) -> str:
    """The route and its filters (not the paging parameters): a cursor is good for these only."""
    shown = {k: v for k, v in sorted(filters.items())
             if k not in ("limit", "cursor") and v is not None and (k, v) != ("order", "asc")}
    raw = json.dumps([request.path, shown], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_cursor(key: Sequence[Any], filters: str) -> str:
    raw = json.dumps({"k": [_dump(v) for v in key], "f": filters}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, filters: str, width: int) -> list[Any]:
    """The key a cursor holds; InvalidCursor unless it is one of ours, for these filters."""
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key, made_for = body["k"], body["f"]
        if not isinstance(key, list) or len(key) != width or made_for != filters:
            raise ValueError("another list or other filters")
        return [_load(v) for v in key]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not one this list gave out for these filters; start again "
                            "without it", {"reason": str(exc)[:200]}) from None


def after(columns: Sequence[pw.Field | pw.Node], key: Sequence[Any], descending: bool = False) -> pw.Expression:
    """``(c1, c2, …) > (k1, k2, …)`` (``<`` when descending) in the expanded form every engine
    plans with an index."""
    def beyond(column: Any, value: Any) -> pw.Expression:
        return column < value if descending else column > value
    condition = beyond(columns[-1], key[-1])
    for column, value in zip(reversed(columns[:-1]), reversed(key[:-1])):
        condition = beyond(column, value) | ((column == value) & condition)
    return condition


def page(query: pw.ModelSelect, columns: Sequence[pw.Field | pw.Node], key_of: Callable[[Any], Sequence[Any]],
         args: PageQuery, filters: dict[str, Any]) -> Page:
    """One page of ``query`` ordered by ``columns`` (the last one unique); ``key_of(row)`` gives a
    row's values of those columns."""
    made_for = fingerprint(filters)
    descending = getattr(args, "order", "asc") == "desc"
    if args.cursor:
        key = decode_cursor(args.cursor, made_for, len(columns))
        if not all(_fits(column, value) for column, value in zip(columns, key)):
            raise InvalidCursor("the cursor is not one this list gave out for these filters; start again without it")
        query = query.where(after(columns, key, descending))
    rows = list(query.order_by(*(c.desc() if descending else c for c in columns)).limit(args.limit + 1))
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    return Page(rows, encode_cursor(key_of(rows[-1]), made_for) if more and rows else None)


def paged_response(items: list[dict[str, Any]], next_cursor: str | None, args: PageQuery) -> Response:
    """The page as the list's body, with the next page's address when there is one."""
    if "application/x-ndjson" in request.headers.get("Accept", ""):
        response = Response("".join(json.dumps(item) + "\n" for item in items), content_type="application/x-ndjson")
    else:
        response = Response(json.dumps(items), content_type="application/json")
    if next_cursor is not None:
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "limit")]
        url = f"{request.path}?{urlencode([*params, ('limit', str(args.limit)), ('cursor', next_cursor)])}"
        response.headers["Link"] = f'<{url}>; rel="next"'
        response.headers[NEXT_CURSOR_HEADER] = next_cursor
    return response


def _fits(column: Any, value: Any) -> bool:
    """A key value of the column's kind (what a cursor we made holds for it)."""
    if isinstance(column, pw.DateTimeField):
        return isinstance(value, dt.datetime)
    if isinstance(column, (pw.IntegerField, pw.AutoField)):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(column, pw.CharField):
        return isinstance(value, str)
    return True  # an expression (an aggregate): its route checks it


def _dump(value: Any) -> Any:
    return {"d": value.isoformat()} if isinstance(value, dt.datetime) else value


def _load(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"d"} and isinstance(value["d"], str):
        return dt.datetime.fromisoformat(value["d"])
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("not a key value")
    return value
