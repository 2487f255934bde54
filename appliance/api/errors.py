"""The one place where errors become HTTP responses: ``{code, message, details?}``."""
from __future__ import annotations

import json
import logging
from typing import Any

from quart import Quart, jsonify
from quart_schema import RequestSchemaValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from appliance.api.observability import note_error
from appliance.control.db import UNAVAILABLE as CONTROL_DB_UNAVAILABLE
from appliance.control.db import first_line
from appliance.errors import ApplianceError, ControlDbUnavailable, QueueUnavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "invalid_argument", 401: "unauthenticated", 404: "not_found",
               405: "invalid_argument", 409: "conflict", 413: "invalid_argument",
               415: "invalid_argument", 429: "rate_limited", 431: "invalid_argument"}


_PROTOCOL_MESSAGES = {400: "malformed HTTP request", 408: "the request took too long to arrive",
                      413: "request body too large",
                      431: "request headers too large: send a shorter request line and fewer or smaller headers"}


def protocol_error_body(status: int) -> bytes:
    """The envelope for an answer the HTTP server gives itself, before any route runs."""
    code = _HTTP_CODES.get(status, "invalid_argument" if 400 <= status < 500 else "internal_error")
    message = _PROTOCOL_MESSAGES.get(status, f"HTTP {status}")
    return json.dumps({"code": code, "message": message}).encode()


def error_response(status: int, code: str, message: str, details: dict | None = None):
    note_error(code, details)  # for the access log and the HTTP series
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return jsonify(body), status


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApplianceError)
    async def _appliance(error: ApplianceError):
        body, status = error_response(error.http_status, error.code, error.message, error.details)
        body.headers.update(error.headers)
        return body, status

    @app.errorhandler(CONTROL_DB_UNAVAILABLE[0])
    @app.errorhandler(CONTROL_DB_UNAVAILABLE[1])
    async def _control_db(error: Exception):
        # The driver's text stays in the log: it names hosts and users, and it helps nobody calling.
        log.warning("Control DB unavailable: %s", first_line(error))
        return await _appliance(ControlDbUnavailable(
            "the Control DB is unreachable or busy; retry shortly"))

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    async def _redis(error: Exception):
        log.warning("Redis unavailable: %s", error)
        return await _appliance(QueueUnavailable("the queue (Redis) is unreachable; retry shortly"))

    @app.errorhandler(RequestSchemaValidationError)
    async def _validation(error: RequestSchemaValidationError):
        problems = []
        inner = error.validation_error
        if hasattr(inner, "errors"):
            for item in inner.errors():
                problems.append({"field": ".".join(str(p) for p in item.get("loc", ())),
                                 "problem": item.get("msg", "")})
        message = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems) or str(inner)
        return error_response(400, "invalid_argument", f"invalid request: {message}",
                              {"problems": problems} if problems else None)

    @app.errorhandler(HTTPException)
    async def _http(error: HTTPException):
        status = error.code or 500
        message = {400: "malformed request (is the body valid JSON?)",
                   413: "request body too large"}.get(status, error.description or error.name)
        body, status = error_response(status, _HTTP_CODES.get(status, "internal_error"), message)
        for name, value in error.get_headers():  # e.g. Allow on a 405, Retry-After on a 503
            if name.lower() != "content-type":
                body.headers[name] = value
        return body, status

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the appliance log")
