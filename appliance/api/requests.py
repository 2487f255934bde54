"""How every route reads a JSON body: one parser, so a bad body is always a 400 `invalid_argument`.

Quart decodes the body before parsing it, so bytes that are not UTF-8 used to escape as an
unhandled ``UnicodeDecodeError`` (a 500). Text the Control DB cannot store (NUL characters, lone
surrogates) is refused here too, rather than failing deep inside a route.
"""
from __future__ import annotations

import json
from typing import Any

from quart import Request

from appliance.errors import InvalidArgument


class JsonRequest(Request):
    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        data = await self.get_data(cache=cache, as_text=False)
        if isinstance(data, str):  # as_text=False: bytes, but typed either way
            data = data.encode()
        try:
            result = parse_json_body(data)
        except InvalidArgument:
            if not silent:
                raise
            result = None
        if cache:
            self._cached_json[silent] = result
        return result


def parse_json_body(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"malformed request body: not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArgument("malformed request body: empty, expected a JSON object")
    try:
        value = json.loads(text)
    except ValueError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidArgument(f"malformed request body: not JSON ({detail or 'unparsable'})") from None
    _check_text(value)
    return value


def _check_text(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise InvalidArgument("malformed request body: a string contains a NUL character (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument("malformed request body: a string contains a lone UTF-16 surrogate") from None
