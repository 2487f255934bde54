"""Answers the HTTP server gives before the app sees a request, in the same error envelope.

Hypercorn (h11) answers a request it cannot parse itself, without calling the app: 431 when the
request line and headers exceed ``h11_max_incomplete_size``, 400 for a malformed request. Its
answer has an empty body; clients script against ``{code, message}``, so the served API swaps
in a body from :func:`appliance.api.errors.protocol_error_body`. Hypercorn is pinned below 0.19,
and a test against a really served API fails if its protocol class stops calling this hook.
"""
from __future__ import annotations

from itertools import chain

import h11
from hypercorn.protocol.h11 import H11Protocol

from appliance.api.errors import protocol_error_body

_MARK = "_sqlrs_json_errors"


def install_json_protocol_errors() -> None:
    """Idempotent: patch hypercorn's HTTP/1.1 protocol so its own error answers carry JSON."""
    if getattr(H11Protocol._send_error_response, _MARK, False):
        return

    async def _send_error_response(self: H11Protocol, status_code: int) -> None:
        body = protocol_error_body(status_code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await self._send_h11_event(h11.Response(
            status_code=status_code, headers=list(chain(headers, self.config.response_headers("h11")))))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    setattr(_send_error_response, _MARK, True)
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]  # replaced on purpose
