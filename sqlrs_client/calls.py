"""The requests of the API as data, and the flows made of them, free of any I/O.

A ``Call`` is one HTTP request; an ``Answer`` is what came back for it, parsed. A flow is a
generator that yields calls and receives their answers (or, for an error status, has the
``ApiError`` thrown in, which it may catch), and returns its result. The sync and the async
client each drive the same flows with their own httpx client (:func:`drive` here, its awaiting
twin in :mod:`sqlrs_client.aio`), so what a method sends, in which order, and what it makes of
the answers is written once.
"""
from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlrs_client.errors import ApiError, SqlrsError

T = TypeVar("T")
OK = (200, 201, 202)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # under the appliance's URL, or a whole URL the appliance gave (a next page)
    params: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = OK


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON answer; None when there was none (or it is not JSON: see ``content``)
    next_url: str | None = None  # a list's next page (its ``Link: rel="next"``)
    content: bytes = b""


Flow = Generator[Call, Answer, T]


def drive(flow: Flow[T], send: Callable[[Call], Answer]) -> T:
    """Run ``flow``, answering each of its calls with ``send`` (which raises ``ApiError`` for a
    status outside the call's ``ok``); its result."""
    try:
        call = next(flow)
        while True:
            try:
                answer = send(call)
            except SqlrsError as exc:
                call = flow.throw(exc)
            else:
                call = flow.send(answer)
    except StopIteration as done:
        return done.value


def answer_of(call: Call, status: int, reason: str, body: bytes, links: Mapping[Any, Any]) -> Answer:
    """An ``Answer``, or the ``ApiError`` a status outside ``call.ok`` means."""
    parsed = parse_json(body)
    if status not in call.ok:
        raise api_error(status, reason, parsed)
    return Answer(status, parsed, (links.get("next") or {}).get("url"), body)


def parse_json(body: bytes) -> Any:
    import json
    if body[:1] not in (b"{", b"[", b'"') and body.strip()[:1] not in (b"{", b"["):
        return None  # not JSON (an artifact, a proxy's page): no attempt to parse megabytes
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def api_error(status: int, reason: str, body: Any) -> ApiError:
    """Read ``{code, message, details?}``; fall back to the status line for anything else."""
    if isinstance(body, dict) and "code" in body and "message" in body:
        details = body.get("details")
        code, message = str(body["code"]), str(body["message"])
        details = details if isinstance(details, dict) else None
    else:
        code = {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}.get(
            status, "internal_error" if status >= 500 else "http_error")
        message, details = f"HTTP {status} {reason}".strip(), None
    hint = "pass a token (SQLRS_TOKEN or SQLRS_TOKEN_FILE)" if status == 401 else None
    return ApiError(status, code, message, details, hint=hint)


def query(params: Mapping[str, Any]) -> dict[str, str]:
    """Unset parameters left out, booleans spelled as the API's query parser reads them."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


# -- flows -----------------------------------------------------------------------------------
def get(path: str, **params: Any) -> Flow[Any]:
    return (yield Call("GET", path, query(params))).body


def post(path: str, body: Any = None, *, ok: tuple[int, ...] = OK) -> Flow[Any]:
    return (yield Call("POST", path, json=body, ok=ok)).body


@dataclass(frozen=True)
class Cancelled:
    """A cancel's answer: the job's status, and whether this request stopped it (False: it had
    already finished, and ``job`` says how)."""
    job: Any
    requested: bool


def cancel(job_id: str) -> Flow[Cancelled]:
    answer = yield Call("POST", f"/v1/prepare-jobs/{job_id}/cancel", ok=(200, 202))
    return Cancelled(answer.body, answer.status == 202)


def readiness() -> Flow[Any]:
    """``/v1/ready``'s checks, ready or not (503 carries the same body)."""
    return (yield Call("GET", "/v1/ready", ok=(200, 503))).body


def delete(path: str, *, ok: tuple[int, ...] = OK, **params: Any) -> Flow[Any]:
    return (yield Call("DELETE", path, query(params), ok=ok)).body


def put(path: str, body: Any) -> Flow[Any]:
    return (yield Call("PUT", path, json=body)).body


def download(path: str) -> Flow[bytes]:
    return (yield Call("GET", path)).content


PAGE_ROWS = 1000  # the most a list answers at once


def every_row(path: str, *, at_most: int | None = None, **params: Any) -> Flow[list[Any]]:
    """The rows of a paged list, page after page (each page names the next), up to ``at_most``."""
    rows: list[Any] = []
    call = Call("GET", path, query({**params, "limit": PAGE_ROWS}))
    while True:
        answer = yield call
        rows += answer.body
        if answer.next_url is None or (at_most is not None and len(rows) >= at_most):
            return rows[:at_most] if at_most is not None else rows
        call = Call("GET", answer.next_url)  # the link carries the filters and the cursor


DELETE_OK = (200, 202, 409)  # 409: blocked, with the tree that says by what


def events_call(job_id: str) -> Call:
    return Call("GET", f"/v1/prepare-jobs/{job_id}/events", headers={"Accept": "application/x-ndjson"}, ok=(200,))
