"""What every API request leaves for operators: one access-log line and this process's HTTP series.

The access log is the logger ``sqlrs.access``: one line per request, after its answer is made
(for an event stream: when its headers go out, not when it ends), with the request id, the org,
the route *pattern* (``/v1/instances/<ref>``: no tenant names in a label), the status, the
error code, the peer address and the duration. In JSON format each is a field of its own.

The HTTP series are this process's (request counts and latencies by route, 401s, 429s by the
scope that was exhausted), kept by prometheus-client in memory and added to each scrape of
``/metrics`` on this process: Prometheus scrapes every API process and sums. They restart from 0
with the process, which ``rate()`` handles; the cluster's own counters live in the Control DB.
"""
from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.registry import Collector
from quart import Response, g, request

ACCESS_LOG = logging.getLogger("sqlrs.access")
UNMATCHED_ROUTE = "unmatched"  # any path no route has: one label value, however many paths are tried
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"  # any other token a client sends: one label value, not one series each
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
LIMIT_SCOPES = ("principal", "org", "address")
disable_created_metrics()  # a ``_created`` twin of every series is noise to our dashboards and alerts


class HttpMetrics:
    """This process's HTTP series (registered with no registry: each scrape adds them to its own)."""

    def __init__(self) -> None:
        self.requests = Counter("sqlrs_http_requests", "HTTP requests answered by this API process",
                                ["method", "route", "status"], registry=None)
        self.latency = Histogram("sqlrs_http_request_duration_seconds", "Time to answer a request (to the "
                                 "response's headers)", ["method", "route"], buckets=LATENCY_BUCKETS, registry=None)
        self.auth_failures = Counter("sqlrs_auth_failures", "Requests refused 401 (no, bad or expired credentials)",
                                     registry=None)
        self.rate_limited = Counter("sqlrs_rate_limited", "Requests refused 429, by the limit that was spent "
                                    "(principal, org, or a client address after failed logins)", ["scope"],
                                    registry=None)
        for scope in LIMIT_SCOPES:  # present at 0 before the first 429
            self.rate_limited.labels(scope)

    def collectors(self) -> list[Collector]:
        return [self.requests, self.latency, self.auth_failures, self.rate_limited]

    def observe(self, method: str, route: str, status: int, seconds: float, limit_scope: str | None) -> None:
        method = method if method in METHODS else OTHER_METHOD
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status == 401:
            self.auth_failures.inc()
        elif status == 429:
            self.rate_limited.labels(limit_scope or "unknown").inc()


def request_started() -> None:
    g.request_started = time.perf_counter()


def note_error(code: str, details: dict | None) -> None:
    """The error envelope being answered (called where every envelope is made)."""
    g.error_code = code
    g.limit_scope = (details or {}).get("scope")


def request_finished(metrics: HttpMetrics, response: Response, *, access_log: bool) -> None:
    seconds = time.perf_counter() - getattr(g, "request_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    metrics.observe(request.method, route, response.status_code, seconds, getattr(g, "limit_scope", None))
    if access_log:
        method, path = _printable(request.method), _printable(request.path)
        fields = {"method": method, "route": route, "path": path, "status": response.status_code,
                  "duration_ms": round(seconds * 1000, 2), "code": getattr(g, "error_code", None),
                  "remote_addr": request.remote_addr}
        ACCESS_LOG.info("%s %s %d %.1f ms", method, path, response.status_code, seconds * 1000,
                        extra={"fields": {k: v for k, v in fields.items() if v is not None}})


def _printable(text: str) -> str:
    """What a client sent, with control characters escaped: a decoded ``%0A`` in a path must not
    start a forged line in a text log."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
