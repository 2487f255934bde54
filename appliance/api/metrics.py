"""Prometheus metrics: counters from the Control DB's counter table, gauges from live rows.

Counters and histograms (``appliance.control.counters``) are raised by the process that sees
each event, in the transaction that records it, so they only rise, cover every worker and
host, and survive restarts and pruning. Gauges count what is live now (queued and running
jobs, live instances, state copies) with indexed queries: a scrape costs the same however
much history the Control DB holds (``make metrics-bench`` measures it).
"""
from __future__ import annotations

import peewee as pw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from appliance.control import counters
from appliance.control.models import Instance, Org, PrepareJob, State, utcnow
from appliance.control.quotas import LIVE_INSTANCE

ACTIVE_JOB = ["queued", "running"]
# Not yet ended (expired and failed rows are history, kept for `sqlrs ls` and pruned with their job).
UNENDED_INSTANCE = ["starting", "active", "pooled", "binding", "deleting", "delete_requested"]


def _active_jobs(*columns, statuses: list[str]):
    """Columns of the jobs (not plan-only) in ``statuses``, found through the status index and
    counted here: grouping in SQL lets SQLite's planner walk a grouping column's index over every
    job ever recorded instead."""
    return (PrepareJob.select(*columns)
            .where(PrepareJob.status.in_(statuses) & (PrepareJob.plan_only == False))  # noqa: E712 (SQL)
            .tuples())


def _histogram(counted: dict, name: str, documentation: str, labels: list[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for label_values, buckets, total in counters.histogram_rows(counted, name):
        family.add_metric(list(label_values), buckets, sum_value=total)
    return family


def _counter(counted: dict, name: str, documentation: str, label: str) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for labels, value in counted.get(name, []):
        family.add_metric([labels[label]], value)
    return family


class ControlDbCollector:
    """Made for one scrape (``render``)."""

    def collect(self):
        self._copies: dict[tuple[str, str], tuple[int, int]] | None = None
        counted = counters.read_all()
        yield from self._queues()
        yield from self._counters(counted)
        yield from self._orgs()
        yield from self._gauges()

    def _queues(self):
        depth = GaugeMetricFamily("sqlrs_queue_jobs", "Prepare jobs waiting, per host", labels=["host"])
        age = GaugeMetricFamily("sqlrs_queue_oldest_age_seconds", "Age of the oldest waiting job, per host",
                                labels=["host"])
        now = utcnow()
        waiting: dict[str, list] = {}
        for host, created_at in _active_jobs(PrepareJob.host_id, PrepareJob.created_at, statuses=["queued"]):
            waiting.setdefault(host or "", []).append(created_at)
        for host, created in sorted(waiting.items()):
            depth.add_metric([host], len(created))
            age.add_metric([host], max(0.0, (now - min(created)).total_seconds()))
        yield depth
        yield age

    def _counters(self, counted: dict):
        yield _histogram(counted, counters.TASK_DURATION, "How long steps took to build or hit, and instances "
                         "to bind (clone, start, password; or a warm-pool bind)", ["kind"])
        yield _histogram(counted, counters.SNAPSHOT_DURATION, "How long committing a state's snapshot took", [])
        yield _counter(counted, counters.JOB_ERRORS, "Failed jobs by error code", "code")
        yield _counter(counted, counters.JOBS_FINISHED, "Prepare jobs that ended, by status", "status")
        steps = _counter(counted, counters.STEPS, "Finished steps, by whether the cache answered them", "outcome")
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
        for status, count in (PrepareJob.select(PrepareJob.status, pw.fn.COUNT(PrepareJob.job_id))
                              .where(PrepareJob.status.in_(ACTIVE_JOB)).group_by(PrepareJob.status).tuples()):
            jobs.add_metric([status], count)
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
        for status, count in (Instance.select(Instance.status, pw.fn.COUNT(Instance.instance_id))
                              .where(Instance.status.in_(UNENDED_INSTANCE)).group_by(Instance.status).tuples()):
            instances.add_metric([status], count)
        yield instances


def render() -> bytes:
    registry = CollectorRegistry()
    registry.register(ControlDbCollector())
    return generate_latest(registry)

