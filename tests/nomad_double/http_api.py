"""The HTTP face of the double: Nomad's routes, status codes, headers and ACL token check."""
from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .server import Cluster, HttpError
from .validation import InvalidJob

_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool


class Handler(BaseHTTPRequestHandler):
    server_version = "nomad-double"
    cluster: Cluster
    token: str | None

    def log_message(self, *args: Any) -> None:  # quiet: tests read results, not access logs
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        try:
            self._authorize()
            namespace = query.get("namespace") or "default"
            result = self._route(method, parts, query, namespace)
        except HttpError as exc:
            return self._reply(exc.status, exc.args[0].encode(), "text/plain")
        except InvalidJob as exc:
            return self._reply(400, str(exc).encode(), "text/plain")
        if isinstance(result, bytes):
            return self._reply(200, result, "text/plain; charset=utf-8")
        self._reply(200, json.dumps(result).encode(), "application/json")

    def _authorize(self) -> None:
        if self.token is None:
            return
        given = self.headers.get("X-Nomad-Token")
        auth = self.headers.get("Authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:]
        if given != self.token:
            raise HttpError(403, "Permission denied" if given else "Permission denied: missing ACL token")

    def _route(self, method: str, parts: list[str], query: dict, namespace: str) -> Any:
        c = self.cluster
        match (method, parts):
            case ("PUT" | "POST", ["v1", "jobs"]):
                return c.register(self._body(), query.get("namespace"), None)
            case ("PUT" | "POST", ["v1", "job", job_id]):
                return c.register(self._body(), query.get("namespace"), job_id)
            case ("GET", ["v1", "jobs"]):
                return c.list_jobs(namespace, query.get("prefix", ""))
            case ("GET", ["v1", "job", job_id]):
                return c.job(namespace, job_id)
            case ("GET", ["v1", "job", job_id, "allocations"]):
                return c.job_allocations(namespace, job_id)
            case ("DELETE", ["v1", "job", job_id]):
                return c.deregister(namespace, job_id, query.get("purge", "false") in _TRUE)
            case ("GET", ["v1", "allocation", alloc_id]):
                return c.allocation(namespace, alloc_id)
            case ("PUT" | "POST", ["v1", "client", "allocation", alloc_id, "signal"]):
                c.signal(namespace, alloc_id, self._body() or {})
                return {}
            case ("GET", ["v1", "client", "fs", "logs", alloc_id]):
                data = c.logs(namespace, alloc_id, query.get("task"), query.get("type"))
                if query.get("plain", "false") in _TRUE:
                    return data
                frame = {"File": f"alloc/logs/{query['task']}.{query['type']}.0", "Offset": len(data),
                         "Data": base64.b64encode(data).decode()}
                return json.dumps(frame).encode() if data else b""
            case ("GET", ["v1", "nodes"]):
                return c.nodes()
            case ("GET", ["v1", "agent", "self"]):
                return {"config": {"Region": "global", "Datacenter": c.datacenter}, "member": {"Name": "nomad-double"}}
        raise HttpError(404, f"Invalid URL {self.path.split('?')[0]}")

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"Failed to decode request: {exc}") from None

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Nomad-Index", str(self.cluster.index))
        self.send_header("X-Nomad-KnownLeader", "true")
        self.send_header("X-Nomad-LastContact", "0")
        self.end_headers()
        self.wfile.write(body)


def make_server(host: str, port: int, cluster: Cluster, token: str | None) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"cluster": cluster, "token": token})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
