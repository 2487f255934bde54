"""Answers hypercorn gives itself, before the app sees a request, carry the error envelope too:
checked against the API really served (`sqlrs-appliance api`), since the in-process test client
never goes through the HTTP server."""
from __future__ import annotations

import json
import socket


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; return the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_oversize_request_headers_answer_431_with_the_error_envelope(served_api):
    big = "x" * (64 * 1024)
    status, headers, body = raw_exchange(served_api.port, (
        f"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Padding: {big}\r\n\r\n").encode())
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"code": "invalid_argument", "message": json.loads(body)["message"]}
    assert "header" in json.loads(body)["message"]


def test_a_malformed_request_answers_400_with_the_error_envelope(served_api):
    status, headers, body = raw_exchange(served_api.port, b"GET /v1/health HTTP/1.1\r\nno colon here\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "invalid_argument"


def test_the_served_api_still_answers_normal_requests(served_api):
    status, _, body = raw_exchange(served_api.port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and json.loads(body)["ok"] is True
