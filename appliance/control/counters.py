"""Monotonic counters and histograms, kept in the Control DB.

The API, the RQ workers and every host's reconciler are separate processes, and a job's
events happen in whichever of them runs it. Each event raises its counter in the same
transaction that records the event (an upsert on one small row), so:

* a count never goes down: pruning or deleting a job's rows touches no counter;
* nothing is counted twice or lost: the event and its count commit or roll back together;
* every process, on every host, adds to the one total, and a restarted process loses nothing;
* a scrape reads this table (one row per metric and label set), whatever the history holds.

In-process prometheus-client counters would lose the workers' counts at each restart and,
in multiprocess mode, need a shared directory on every host and a merge per scrape; a
table beside the rows the events already write has neither problem.

A histogram observation raises three rows: its bucket (the smallest bound at or above the
value; buckets are stored non-cumulative and summed at scrape), ``_sum`` and ``_count``.
Where one transaction records several events (a job answered at admission: its steps, its
bind, its end), :func:`batched` adds them up and writes each row once, in one statement.
"""
from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator

from peewee import EXCLUDED

from appliance.control.models import MetricCounter

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
BUCKET_BOUNDS = [str(b) for b in DURATION_BUCKETS] + ["+Inf"]  # the ``le`` labels, in order

JOB_ERRORS = "sqlrs_job_errors"
JOBS_FINISHED = "sqlrs_prepare_jobs_finished"
STEPS = "sqlrs_steps"
TASK_DURATION = "sqlrs_task_duration_seconds"
SNAPSHOT_DURATION = "sqlrs_snapshot_duration_seconds"
TRANSFER_BYTES = "sqlrs_transfer_bytes"
TRANSFER_DURATION = "sqlrs_transfer_duration_seconds"


def increment(name: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
    """Raise ``name{labels}`` by ``amount`` (> 0). Call it inside the event's transaction."""
    if amount <= 0:
        return
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending[(name, _key(labels))] = pending.get((name, _key(labels)), 0.0) + amount
        return
    _upsert({(name, _key(labels)): amount})


_batch = threading.local()


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Increments made in the block are summed per row and written when it ends, in one upsert
    (rows in a fixed order, so concurrent batches cannot deadlock). Use it inside the events'
    transaction; nothing is written if the block raises."""
    if getattr(_batch, "pending", None) is not None:  # nested: the outer batch writes
        yield
        return
    _batch.pending = {}
    try:
        yield
        pending = _batch.pending
    finally:
        _batch.pending = None
    if pending:
        _upsert(pending)


def _upsert(amounts: dict[tuple[str, str], float]) -> None:
    rows = [{"name": name, "labels": key, "value": value} for (name, key), value in sorted(amounts.items())]
    (MetricCounter.insert_many(rows)
     .on_conflict(conflict_target=[MetricCounter.name, MetricCounter.labels],
                  update={MetricCounter.value: MetricCounter.value + EXCLUDED.value})
     .execute())


def observe(name: str, value: float, labels: dict[str, str] | None = None) -> None:
    """One histogram observation (``DURATION_BUCKETS``)."""
    labels = dict(labels or {})
    bound = next((b for b in DURATION_BUCKETS if value <= b), None)
    increment(f"{name}_bucket", {**labels, "le": "+Inf" if bound is None else str(bound)})
    increment(f"{name}_count", labels)
    if value > 0:
        increment(f"{name}_sum", labels, value)


def step_finished(task, *, plan_only: bool) -> None:
    """A step (``state_execute``) or an instance bind (``prepare_instance``) succeeded."""
    if plan_only:
        return
    if task.type == "state_execute":
        increment(STEPS, {"outcome": "cache_hit" if task.cached else "built"})
        if task.duration_seconds is not None:
            observe(TASK_DURATION, task.duration_seconds, {"kind": "cache_hit" if task.cached else "build"})
    elif task.type == "prepare_instance" and task.duration_seconds is not None:
        observe(TASK_DURATION, task.duration_seconds, {"kind": "bind"})


def job_finished(status: str, error_code: str | None = None) -> None:
    """A job reached a terminal status (once: call it where that status is written)."""
    increment(JOBS_FINISHED, {"status": status})
    if error_code:
        increment(JOB_ERRORS, {"code": error_code})


def transfer_finished(direction: str, stream_bytes: int, seconds: float) -> None:
    """One state's snapshot stream went to (``export``) or came from (``import``) the object store."""
    increment(TRANSFER_BYTES, {"direction": direction}, stream_bytes)
    observe(TRANSFER_DURATION, seconds, {"direction": direction})


def read_all() -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every counter, by name: [(labels, value)], in a stable order."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in (MetricCounter.select(MetricCounter.name, MetricCounter.labels, MetricCounter.value)
                                .order_by(MetricCounter.name, MetricCounter.labels).tuples()):
        found.setdefault(name, []).append((json.loads(labels), value))
    return found


def histogram_rows(counters: dict, name: str) -> Iterable[tuple[tuple[str, ...], list[tuple[str, float]], float]]:
    """(label values without ``le``, cumulative buckets, sum) per label set of histogram ``name``."""
    per_set: dict[tuple, dict[str, float]] = {}
    for labels, value in counters.get(f"{name}_bucket", []):
        bound = labels.pop("le")
        per_set.setdefault(tuple(sorted(labels.items())), {})[bound] = value
    sums = {tuple(sorted(labels.items())): value for labels, value in counters.get(f"{name}_sum", [])}
    for label_items, by_bound in sorted(per_set.items()):
        running, buckets = 0.0, []
        for bound in BUCKET_BOUNDS:
            running += by_bound.get(bound, 0.0)
            buckets.append((bound, running))
        yield tuple(v for _, v in label_items), buckets, sums.get(label_items, 0.0)


def _key(labels: dict[str, str] | None) -> str:
    return json.dumps(labels or {}, sort_keys=True, separators=(",", ":"))
