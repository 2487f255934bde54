"""The HTTP client of the v1 API, turning every failure into a ``CliFailure`` with an exit code.

One place decides what a transport error or an error body means for the user, so every
verb prints the same ``error: <code>: <message>`` and exits with the same code.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from appliance import __version__
from appliance.cli import exit_codes
from appliance.cli.failures import ApiError, CliFailure

CONNECT_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 120.0  # uploads of large bundles take a while; events have no read timeout
PAGE_ROWS = 1000  # the most a list answers at once

__all__ = ["ApiClient", "ApiError", "CliFailure", "api_error"]


class ApiClient:
    def __init__(self, url: str, token: str | None, *, org: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        headers = {"User-Agent": f"sqlrs-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if org:
            headers["X-Sqlrs-Org"] = org
        self.url = url
        # Certificates are verified on https (the default store); a plain-HTTP appliance needs no
        # store, and loading one costs about 40 ms of every command. Redirects are not followed,
        # so a request never leaves the scheme of ``url``.
        self._http = httpx.Client(base_url=url, headers=headers, transport=transport,
                                  verify=url.lower().startswith("https:"),
                                  timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plain requests ------------------------------------------------------------------
    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> httpx.Response:
        """Send a request; any status outside ``ok`` raises ``ApiError``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code not in ok:
            raise api_error(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_query(params)).json()

    def get_all(self, path: str, *, at_most: int | None = None, **params: Any) -> list[Any]:
        """The rows of a paged list, page after page (each page's ``Link: rel="next"``), up to
        ``at_most`` rows (None: every row)."""
        rows: list[Any] = []
        query: dict[str, str] | None = _query({**params, "limit": PAGE_ROWS})
        url = path
        while True:
            response = self.request("GET", url, params=query)
            rows += response.json()
            following = response.links.get("next", {}).get("url")
            if not following or (at_most is not None and len(rows) >= at_most):
                return rows[:at_most] if at_most is not None else rows
            url, query = following, None  # the link carries the filters and the cursor

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body).json()

    def post_bytes(self, path: str, data: bytes, content_type: str) -> Any:
        return self.request("POST", path, content=data, headers={"Content-Type": content_type}).json()

    # -- event stream --------------------------------------------------------------------
    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every event of a job from the first, then live; ends when the job is terminal."""
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_SECONDS)
        try:
            with self._http.stream("GET", f"/v1/prepare-jobs/{job_id}/events", timeout=timeout,
                                   headers={"Accept": "application/x-ndjson"}) as response:
                if response.status_code != 200:
                    response.read()
                    raise api_error(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.TransportError) -> CliFailure:
        if isinstance(exc, httpx.ConnectError):
            message = f"cannot connect to the appliance at {self.url} (is it running? set --url or SQLRS_URL)"
        elif isinstance(exc, httpx.TimeoutException):
            message = f"the appliance at {self.url} did not answer in time"
        else:
            message = f"connection to the appliance at {self.url} failed: {type(exc).__name__}"
        return CliFailure("unavailable", message, exit_codes.UNAVAILABLE)


def api_error(response: httpx.Response) -> ApiError:
    """Read ``{code, message, details?}``; fall back to the status line for non-JSON answers."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body and "message" in body:
        code, message, details = str(body["code"]), str(body["message"]), body.get("details")
    else:
        code = {401: "unauthenticated", 403: "permission_denied"}.get(
            status, "internal_error" if status >= 500 else "http_error")
        message = f"HTTP {status} {response.reason_phrase}".strip()
        details = None
    hint = None
    if status == 401:
        hint = "pass a token with --token or --token-file (or SQLRS_TOKEN / SQLRS_TOKEN_FILE)"
    return ApiError(status, code, message, details if isinstance(details, dict) else None, hint)


def _query(params: dict[str, Any]) -> dict[str, str]:
    """Drop unset parameters and spell booleans the way the API's query parser reads them."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out
