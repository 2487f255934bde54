"""Measurement (b): a cache hit through the v1 API, from POST /v1/prepare-jobs to ``select 1``.

The scripts are uploaded once (the bundle is content-addressed, so a client re-uploading
them gets the same ``source_id``); each repetition then submits, polls the job until it
succeeds, and connects to the DSN over TCP. Server timestamps (UTC, milliseconds, same host
clock) split the time into phases so a miss can say what dominates.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg2

from appliance.planning.packing import pack_psql_bundle

from .workloads import Workload

POLL_INTERVAL_SECONDS = 0.02
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class CacheHit:
    seconds: float
    phases: dict[str, float]  # named, in order; they add up to ``seconds``
    instance_id: str
    state_id: str
    cached_steps: int
    delete_seconds: float = 0.0


@dataclass
class ApiSession:
    """A keep-alive HTTP client to one appliance (polling must not pay a TCP handshake)."""

    url: str
    token: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                                   timeout=60)

    def close(self) -> None:
        self.client.close()

    def upload(self, workload: Workload) -> dict[str, Any]:
        """The request body for this workload, with its scripts uploaded."""
        bundle = pack_psql_bundle(workload.psql_args, workload.scripts_dir)
        body: dict[str, Any] = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": bundle.psql_args}
        response = self.client.post("/v1/sources", content=bundle.data, headers={"Content-Type": "application/gzip"})
        response.raise_for_status()
        body["source"] = {"source_id": response.json()["source_id"], "work_dir": bundle.work_dir}
        return body

    def run_job(self, body: dict[str, Any], timeout: float) -> tuple[dict[str, Any], float, float, float]:
        """Submit and poll; returns (final status, t_submit, t_accepted, t_seen) in epoch seconds.
        A job answered at admission returns its 201 body as the status (see :meth:`full_status`)."""
        t_submit = time.time()
        response = self.client.post("/v1/prepare-jobs", json=body)
        t_accepted = time.time()
        if response.status_code != 201:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text[:500]}")
        job_id = response.json()["job_id"]
        if response.json().get("result"):  # answered at admission (warm pool): the DSN is in the 201
            return response.json(), t_submit, t_accepted, t_accepted
        deadline = time.monotonic() + timeout
        while True:
            status = self.client.get(f"/v1/prepare-jobs/{job_id}").json()
            if status["status"] in TERMINAL:
                t_seen = time.time()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status['status']} after {timeout} s")
            time.sleep(POLL_INTERVAL_SECONDS)
        if status["status"] != "succeeded":
            raise RuntimeError(f"job {job_id} {status['status']}: {status.get('error')}")
        return status, t_submit, t_accepted, t_seen

    def delete_instance(self, instance_id: str) -> float:
        started = time.perf_counter()
        response = self.client.delete(f"/v1/instances/{instance_id}", params={"force": "true"})
        if response.status_code not in (200, 202, 204):
            raise RuntimeError(f"deleting instance {instance_id} answered {response.status_code}: {response.text[:300]}")
        return time.perf_counter() - started

    def full_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """The job's whole status (tasks, timestamps), read after the clock stopped."""
        return status if "tasks" in status else self.client.get(f"/v1/prepare-jobs/{status['job_id']}").json()

    def measure_hit(self, body: dict[str, Any]) -> CacheHit:
        status, t_submit, t_accepted, t_seen = self.run_job(body, timeout=60)
        with psycopg2.connect(status["result"]["dsn"], connect_timeout=10) as conn:
            with conn.cursor() as cur:
                cur.execute("select 1")
                cur.fetchone()
        t_done = time.time()
        conn.close()
        status = self.full_status(status)
        steps = [t for t in status["tasks"] if t["type"] == "state_execute"]
        hit = CacheHit(seconds=t_done - t_submit, phases=phases(status, t_submit, t_accepted, t_seen, t_done),
                       instance_id=status["result"]["instance_id"], state_id=status["result"]["state_id"],
                       cached_steps=sum(1 for t in steps if t.get("cached")))
        if hit.cached_steps != len(steps):
            raise RuntimeError(f"expected a cache hit, but {len(steps) - hit.cached_steps} step(s) were built")
        return hit


def epoch(stamp: str | None) -> float | None:
    """Server timestamps are naive UTC ISO strings ending in Z."""
    if not stamp:
        return None
    return dt.datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=dt.UTC).timestamp()


def phases(status: dict[str, Any], t_submit: float, t_accepted: float, t_seen: float,
           t_done: float) -> dict[str, float]:
    """Consecutive phases between client and server timestamps; each boundary is clamped to
    be no earlier than the one before (server stamps are millisecond-rounded), so the phases
    add up to the measured total exactly."""
    tasks = {t["type"]: t for t in status["tasks"]}
    steps = [t for t in status["tasks"] if t["type"] == "state_execute"]
    resolve, prepare = tasks.get("resolve_image", {}), tasks.get("prepare_instance", {})
    marks: list[tuple[str, float | None]] = [
        ("POST /v1/prepare-jobs (plan, record, enqueue)", t_accepted),
        ("queue wait (until a worker starts the job)", epoch(status.get("started_at"))),
        ("worker: job start", epoch(resolve.get("started_at"))),
        ("resolve_image", epoch(resolve.get("finished_at"))),
        ("worker: between tasks", epoch(steps[0]["started_at"]) if steps else None),
        (f"state_execute x{len(steps)} (cache lookups)", epoch(steps[-1]["finished_at"]) if steps else None),
        ("worker: between tasks ", epoch(prepare.get("started_at"))),
        ("prepare_instance (clone, pg start, password)", epoch(prepare.get("finished_at"))),
        ("worker: job finish (status, events)", epoch(status.get("finished_at"))),
        ("client: poll latency", t_seen),
        ("client: connect + select 1", t_done),
    ]
    result: dict[str, float] = {}
    previous = t_submit
    for name, mark in marks:
        mark = max(previous, min(mark if mark is not None else previous, t_done))
        key = name.strip()
        result[key] = result.get(key, 0.0) + (mark - previous)
        previous = mark
    return result
