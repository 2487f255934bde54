"""Prometheus metrics: counters from the Control DB's counter table, gauges from live rows,
the workers' liveness from Redis, and this API process's own HTTP series (``http_metrics``).

Counters and histograms (``appliance.control.counters``) are raised by the process that sees
each event, in the transaction that records it, so they only rise, cover every worker and
host, and survive restarts and pruning. Gauges count what is live now (queued and running
jobs, live instances, state copies) with indexed queries: a scrape costs the same however
much history the Control DB holds (``make metrics-bench`` measures it).

Every per-host series is written for every registered host, at 0 when there is nothing to
count: a series that vanishes when its queue empties breaks ``rate()`` and alerts on absence.
"""
from __future__ import annotations

import logging
import platform
from collections.abc import Iterable

import peewee as pw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from rq import Worker

from appliance import __version__
from appliance.control import counters
from appliance.control.models import Host, Instance, Org, PrepareJob, State, utcnow
from appliance.control.quotas import LIVE_INSTANCE
from appliance.orchestrator.hosts import is_up
from appliance.orchestrator.queue import UNAVAILABLE as QUEUE_UNAVAILABLE
from appliance.orchestrator.queue import queue_name
from appliance.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_JOB = ["queued", "running"]
ENDED_JOB = ["succeeded", "failed", "cancelled"]
DIRECTIONS = ["export", "import"]
# Not yet ended (expired and failed rows are history, kept for `sqlrs ls` and pruned with their job).
UNENDED_INSTANCE = ["starting", "active", "pooled", "binding", "deleting", "delete_requested"]


def _active_jobs(*columns, statuses: list[str]):
    """Columns of the jobs (not plan-only) in ``statuses``, found through the status index and
    counted here: grouping in SQL lets SQLite's planner walk a grouping column's index over every
    job ever recorded instead."""
    return (PrepareJob.select(*columns)
            .where(PrepareJob.status.in_(statuses) & (PrepareJob.plan_only == False))  # noqa: E712 (SQL)
            .tuples())


def _histogram(counted: dict, name: str, documentation: str, labels: list[str],
               known: Iterable[tuple[str, ...]] = ()) -> HistogramMetricFamily:
    """``known`` label sets are written at 0 until their first observation."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    rows = {values: (buckets, total) for values, buckets, total in counters.histogram_rows(counted, name)}
    empty = ([(bound, 0.0) for bound in counters.BUCKET_BOUNDS], 0.0)
    for label_values in sorted(set(rows) | set(known)):
        buckets, total = rows.get(label_values, empty)
        family.add_metric(list(label_values), buckets, sum_value=total)
    return family


def _counter(counted: dict, name: str, documentation: str, label: str, known: Iterable[str] = ()) -> CounterMetricFamily:
    """``known`` label values are written at 0 until first counted."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    values = {labels[label]: value for labels, value in counted.get(name, [])}
    for value in sorted(set(values) | set(known)):
        family.add_metric([value], values.get(value, 0.0))
    return family


def _build_info() -> GaugeMetricFamily:
    info = GaugeMetricFamily("sqlrs_build_info", "The appliance release and Python this process runs (always 1)",
                             labels=["version", "python"])
    info.add_metric([__version__, platform.python_version()], 1)
    return info


class ControlDbCollector:
    """Made for one scrape (``render``)."""

    def __init__(self, settings: Settings):
        self._settings = settings

    def collect(self):
        self._copies: dict[tuple[str, str], tuple[int, int]] | None = None
        self._hosts = list(Host.select().order_by(Host.host_id))
        counted = counters.read_all()
        yield _build_info()
        yield from self._queues()
        yield from self._host_gauges()
        yield from self._counters(counted)
        yield from self._orgs()
        yield from self._gauges()

    def _queues(self):
        depth = GaugeMetricFamily("sqlrs_queue_jobs", "Prepare jobs waiting, per host", labels=["host"])
        age = GaugeMetricFamily("sqlrs_queue_oldest_age_seconds", "Age of the oldest waiting job, per host "
                                "(0 while none waits)", labels=["host"])
        now = utcnow()
        waiting: dict[str, list] = {host.host_id: [] for host in self._hosts}
        for host, created_at in _active_jobs(PrepareJob.host_id, PrepareJob.created_at, statuses=["queued"]):
            waiting.setdefault(host or "", []).append(created_at)
        for host, created in sorted(waiting.items()):
            depth.add_metric([host], len(created))
            age.add_metric([host], max(0.0, (now - min(created)).total_seconds()) if created else 0.0)
        yield depth
        yield age

    def _host_gauges(self):
        """The registry's view of each host: its reconciler's heartbeat (one per pass) and its store."""
        up = GaugeMetricFamily("sqlrs_host_up", "1 while the host's heartbeat is fresh and it is not drained",
                               labels=["host"])
        heartbeat = GaugeMetricFamily("sqlrs_host_heartbeat_age_seconds", "Seconds since the host's reconciler "
                                      "last completed a pass", labels=["host"])
        free = GaugeMetricFamily("sqlrs_store_free_bytes", "Free bytes on the host's store, at its last heartbeat",
                                 labels=["host"])
        size = GaugeMetricFamily("sqlrs_store_size_bytes", "Size of the host's store, at its last heartbeat",
                                 labels=["host"])
        now = utcnow()
        for host in self._hosts:
            up.add_metric([host.host_id], 1 if is_up(host, self._settings) else 0)
            heartbeat.add_metric([host.host_id], max(0.0, (now - host.heartbeat_at).total_seconds()))
            free.add_metric([host.host_id], host.store_free_bytes or 0)
            size.add_metric([host.host_id], host.store_total_bytes or 0)
        yield from (up, heartbeat, free, size)

    def _counters(self, counted: dict):
        yield _histogram(counted, counters.TASK_DURATION, "How long steps took to build or hit, and instances "
                         "to bind (clone, start, password; or a warm-pool bind)", ["kind"],
                         known=[("bind",), ("build",), ("cache_hit",)])
        yield _histogram(counted, counters.SNAPSHOT_DURATION, "How long committing a state's snapshot took", [],
                         known=[()])
        yield _histogram(counted, counters.TRANSFER_DURATION, "How long a state's stream took to export to or "
                         "import from the object store", ["direction"], known=[(d,) for d in DIRECTIONS])
        yield _counter(counted, counters.TRANSFER_BYTES, "Bytes of state streams exported or imported", "direction",
                       known=DIRECTIONS)
        yield _counter(counted, counters.JOB_ERRORS, "Failed jobs by error code", "code")
        yield _counter(counted, counters.JOBS_FINISHED, "Prepare jobs that ended, by status", "status",
                       known=ENDED_JOB)
        steps = _counter(counted, counters.STEPS, "Finished steps, by whether the cache answered them", "outcome",
                         known=["built", "cache_hit"])
        yield steps
        done = {labels["outcome"]: value for labels, value in counted.get(counters.STEPS, [])}
        finished = done.get("cache_hit", 0) + done.get("built", 0)
        ratio = GaugeMetricFamily("sqlrs_cache_hit_ratio", "Share of finished steps the cache answered")
        ratio.add_metric([], done.get("cache_hit", 0) / finished if finished else 0.0)
        yield ratio

    def _orgs(self):
        """Per-org usage, from live rows only (active jobs, live instances, state copies)."""
        names = ("running_jobs", "queued_jobs", "instances", "state_bytes")
        usage: dict[str, dict[str, float]] = {org: {} for (org,) in Org.select(Org.slug).tuples()}
        for org, status in _active_jobs(PrepareJob.org, PrepareJob.status, statuses=ACTIVE_JOB):
            counts = usage.setdefault(org, {})
            counts[f"{status}_jobs"] = counts.get(f"{status}_jobs", 0) + 1
        for org, count in (Instance.select(Instance.org, pw.fn.COUNT(Instance.instance_id))
                           .where(Instance.status.in_(LIVE_INSTANCE) & (Instance.expires_at > utcnow()))
                           .group_by(Instance.org).tuples()):
            usage.setdefault(org, {})["instances"] = count
        for (org, _host), (_count, total) in self._state_copies().items():
            counts = usage.setdefault(org, {})
            counts["state_bytes"] = counts.get("state_bytes", 0) + total
        families = {n: GaugeMetricFamily(f"sqlrs_org_{n}", f"Per-org usage: {n.replace('_', ' ')}", labels=["org"])
                    for n in names}
        for org in sorted(usage):
            for name in names:
                families[name].add_metric([org], usage[org].get(name, 0))
        yield from families.values()

    def _state_copies(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(copies, bytes) per (org, host): one pass over the state table for the whole scrape."""
        if self._copies is None:
            self._copies = {(org, host): (count, int(total or 0)) for org, host, count, total in
                            State.select(State.org, State.host, pw.fn.COUNT(State.id), pw.fn.SUM(State.size_bytes))
                            .group_by(State.org, State.host).tuples()}
        return self._copies

    def _distinct_states(self) -> int:
        """States, each once. A host holds one copy of a state at most, so while a single host
        holds them all, that is its count of copies; counting distinct ids reads every state."""
        copies = self._state_copies()
        if len({host for _org, host in copies}) <= 1:
            return sum(count for count, _bytes in copies.values())
        return State.select(State.org, State.state_id).distinct().count()

    def _gauges(self):
        jobs = GaugeMetricFamily("sqlrs_prepare_jobs", "Prepare jobs queued or running now", labels=["status"])
        active = dict(PrepareJob.select(PrepareJob.status, pw.fn.COUNT(PrepareJob.job_id))
                      .where(PrepareJob.status.in_(ACTIVE_JOB)).group_by(PrepareJob.status).tuples())
        for status in ACTIVE_JOB:
            jobs.add_metric([status], active.get(status, 0))
        yield jobs

        states = GaugeMetricFamily("sqlrs_states", "States recorded (each counted once, however many hosts hold it)")
        states.add_metric([], self._distinct_states())
        yield states
        copies = GaugeMetricFamily("sqlrs_state_copies", "State copies each host holds", labels=["host"])
        size = GaugeMetricFamily("sqlrs_state_bytes", "Bytes the state copies on each host refer to", labels=["host"])
        by_host: dict[str, tuple[int, int]] = {}
        for (_org, host), (count, total) in self._state_copies().items():
            seen, held = by_host.get(host, (0, 0))
            by_host[host] = (seen + count, held + total)
        for host, (count, total) in sorted(by_host.items()):
            copies.add_metric([host], count)
            size.add_metric([host], total)
        yield copies
        yield size

        instances = GaugeMetricFamily("sqlrs_instances", "Instances not yet ended, by status", labels=["status"])
        unended = dict(Instance.select(Instance.status, pw.fn.COUNT(Instance.instance_id))
                       .where(Instance.status.in_(UNENDED_INSTANCE)).group_by(Instance.status).tuples())
        for status in UNENDED_INSTANCE:
            instances.add_metric([status], unended.get(status, 0))
        yield instances


class WorkerCollector:
    """The RQ workers registered in Redis, per host: a worker's registration expires when its
    heartbeat stops, so a count of 0 on an up host means nothing will run its jobs."""

    def __init__(self, redis: Redis, hosts: Iterable[str]):
        self._redis, self._hosts = redis, list(hosts)

    def collect(self):
        reachable = GaugeMetricFamily("sqlrs_redis_up", "1 when this API process reached Redis for this scrape")
        workers = GaugeMetricFamily("sqlrs_workers", "RQ workers alive (registered, heartbeat fresh), per host and "
                                    "state", labels=["host", "state"])
        try:
            found = Worker.all(connection=self._redis)
        except QUEUE_UNAVAILABLE as exc:
            log.warning("metrics: no worker series, Redis is unreachable (%s)", exc)
            reachable.add_metric([], 0)
            yield reachable
            return
        reachable.add_metric([], 1)
        counts = {(host, state): 0 for host in self._hosts for state in ("busy", "idle")}
        by_queue = {queue_name(host): host for host in self._hosts}
        for worker in found:
            host = next((by_queue[q] for q in worker.queue_names() if q in by_queue), None)
            if host is not None:
                state = "busy" if worker.get_state() == "busy" else "idle"
                counts[(host, state)] += 1
        for (host, state), count in sorted(counts.items()):
            workers.add_metric([host, state], count)
        yield reachable
        yield workers


def render(settings: Settings, redis: Redis, *process_collectors: Collector) -> bytes:
    """The whole scrape: the cluster's series (Control DB, Redis) and this process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlDbCollector(settings))
    registry.register(WorkerCollector(redis, [h for (h,) in Host.select(Host.host_id).tuples()]))
    for collector in process_collectors:
        registry.register(collector)
    return generate_latest(registry)

