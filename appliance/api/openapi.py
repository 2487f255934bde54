"""The OpenAPI document (GET /openapi.json): quart-schema's, completed where it falls short.

* Paths: quart-schema's rule-to-path pattern swallows everything between two variables when the
  second has a converter (``<job_id>/artifacts/<path:name>`` became ``{name}``); rebuilt here.
* Errors: every operation documents the ``{code, message, details?}`` answers it can give
  (``Error``): 400/401/403/429/503 on every authenticated route, 404 where a path names an
  object, 409 where a conflict is possible, 413 where a body is sent.
* Security: a route no role is needed for (``/v1/health``) is published without a token.
* ``X-Sqlrs-Org`` is documented on every authenticated route.
"""
from __future__ import annotations

import re
from typing import Any

from quart_schema import OpenAPIProvider
from werkzeug.routing import Rule

from appliance.api.authz import required_role
from appliance.ids import ORG_PATTERN

PATH_VARIABLE = re.compile(r"<(?:[^<>:]*:)?([^<>]+)>")

ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "description": "Every error answer: a stable `code`, a human `message`, and sometimes `details`.",
    "properties": {
        "code": {"type": "string", "description": "Stable: clients script against it"},
        "message": {"type": "string"},
        "details": {"type": "object", "additionalProperties": True},
    },
    "required": ["code", "message"],
}

_ERRORS = {
    400: "invalid_argument: malformed JSON, a field or parameter out of range, a malformed X-Sqlrs-Org",
    401: "unauthenticated: no, malformed, unknown, expired or revoked token",
    403: "permission_denied (the role does not allow it, or another org), quota_exceeded or priority_not_allowed",
    404: "not_found: unknown, or another org's",
    409: "conflict",
    413: "invalid_argument: the body is too large",
    429: "rate_limited or quota_exceeded; Retry-After says when to retry",
    503: "control_db_unavailable, queue_unavailable, issuer_unavailable or sources_unwritable; Retry-After says "
         "when to retry",
}

# Routes whose handler can answer 409 with an Error (a blocked delete's 409 is a DeleteResult)
_CONFLICTS = {("POST", "/v1/states/<state_id>/export"), ("POST", "/v1/prepare-jobs"),
              ("POST", "/v1/states/import")}

# Bodies that are not JSON, so no request model describes them
_RAW_BODIES = {("POST", "/v1/sources"): {
    "required": True, "description": "A tar.gz bundle of scripts (regular files and directories only)",
    "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}}

ORG_HEADER_PARAMETER = {
    "name": "X-Sqlrs-Org", "in": "header", "required": False,
    "description": "The org to act in, for a principal in several orgs (operators: any org)",
    "schema": {"type": "string", "pattern": ORG_PATTERN},
}


PAGE_HEADERS = {
    "Link": {"description": 'The next page, `<…>; rel="next"`; absent on the last page',
             "schema": {"type": "string"}},
    "Sqlrs-Next-Cursor": {"description": "The next page's `cursor`; absent on the last page",
                          "schema": {"type": "string"}},
}


def _error_response(status: int) -> dict[str, Any]:
    return {"description": _ERRORS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


class ApplianceOpenAPIProvider(OpenAPIProvider):
    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        built, components = super().build_paths(rule)
        path = PATH_VARIABLE.sub(r"{\1}", rule.rule)
        operations: dict[str, Any] = {}
        for original in built.values():
            for method, operation in original.items():
                operations[method] = self._complete(rule, method.upper(), dict(operation))
        components["Error"] = ERROR_SCHEMA
        return {path: operations}, components

    def _complete(self, rule: Rule, method: str, operation: dict[str, Any]) -> dict[str, Any]:
        # quart-schema shares these between a rule's methods: copy before changing
        responses = dict(operation.get("responses") or {})
        parameters = list(operation.get("parameters") or [])
        statuses: set[int] = set()
        if required_role(method, rule.rule) is None:
            operation["security"] = []  # open to anyone (and every other route is refused without a role)
        else:
            statuses |= {400, 401, 403, 429, 503}
            parameters.append(dict(ORG_HEADER_PARAMETER))
        if rule.arguments:
            statuses.add(404)
        if method in ("POST", "PUT", "PATCH"):
            statuses |= {400, 413}
        if (method, rule.rule) in _CONFLICTS:
            statuses.add(409)
        for status in sorted(statuses):
            if status not in responses and str(status) not in responses:
                responses[status] = _error_response(status)
        if (method, rule.rule) in _RAW_BODIES and "requestBody" not in operation:
            operation["requestBody"] = _RAW_BODIES[(method, rule.rule)]
        if not any(200 <= int(status) < 300 for status in responses):
            responses[200] = {"description": "OK"}  # a stream, text or a list without a model
        if method == "GET" and any(p.get("name") == "cursor" for p in parameters):  # a paged list
            ok = dict(responses.get(200) or responses.get("200") or {"description": "OK"})
            ok["headers"] = PAGE_HEADERS
            responses[200 if 200 in responses or "200" not in responses else "200"] = ok
        operation["responses"] = responses
        operation["parameters"] = parameters
        return operation
