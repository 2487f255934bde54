"""Prometheus metrics, read from the Control DB at scrape time.

The workers are separate processes; counting in the DB instead of in each process's memory
means every scrape sees the whole appliance, and a restarted process loses nothing.
"""
from __future__ import annotations

import peewee as pw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..control.models import Instance, PrepareJob, State, Task, utcnow
from ..orchestrator import quotas

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def _histogram(name: str, documentation: str, labels: list[str], rows) -> HistogramMetricFamily:
    """``rows``: (label values, value) pairs; buckets are counted here, once per scrape."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    grouped: dict[tuple, list[float]] = {}
    for label_values, value in rows:
        grouped.setdefault(tuple(label_values), []).append(float(value))
    for label_values, values in sorted(grouped.items()):
        buckets = [(str(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
        family.add_metric(list(label_values), buckets + [("+Inf", len(values))], sum_value=sum(values))
    return family


class ControlDbCollector:
    def collect(self):
        yield from self._queues()
        yield from self._latencies()
        yield from self._orgs()
        yield from self._totals()

    def _queues(self):
        depth = GaugeMetricFamily("sqlrs_queue_jobs", "Prepare jobs waiting, per host", labels=["host"])
        age = GaugeMetricFamily("sqlrs_queue_oldest_age_seconds", "Age of the oldest waiting job, per host",
                                labels=["host"])
        now = utcnow()
        for host, count, oldest in (PrepareJob.select(PrepareJob.host_id, pw.fn.COUNT(PrepareJob.job_id),
                                                      pw.fn.MIN(PrepareJob.created_at))
                                    .where((PrepareJob.status == "queued") & (PrepareJob.plan_only == False))  # noqa: E712
                                    .group_by(PrepareJob.host_id).tuples()):
            depth.add_metric([host or ""], count)
            oldest = oldest if not isinstance(oldest, str) else PrepareJob.created_at.python_value(oldest)
            age.add_metric([host or ""], max(0.0, (now - oldest).total_seconds()))
        yield depth
        yield age

    def _latencies(self):
        tasks = (Task.select(Task.type, Task.cached, Task.duration_seconds)
                 .where((Task.status == "succeeded") & Task.duration_seconds.is_null(False)
                        & Task.type.in_(["state_execute", "prepare_instance"])).tuples())
        kinds = [([("build" if not cached else "cache_hit") if type_ == "state_execute" else "bind"], seconds)
                 for type_, cached, seconds in tasks]
        yield _histogram("sqlrs_task_duration_seconds", "How long steps took to build or hit, and instances "
                         "to bind (clone, start, password; or a warm-pool bind)", ["kind"], kinds)
        snapshots = State.select(State.snapshot_seconds).where(State.snapshot_seconds.is_null(False)).tuples()
        yield _histogram("sqlrs_snapshot_duration_seconds", "How long committing a state's snapshot took", [],
                         [([], seconds) for (seconds,) in snapshots])
        errors = CounterMetricFamily("sqlrs_job_errors", "Failed jobs by error code", labels=["code"])
        for code, count in (PrepareJob.select(PrepareJob.error_code, pw.fn.COUNT(PrepareJob.job_id))
                            .where(PrepareJob.error_code.is_null(False)).group_by(PrepareJob.error_code).tuples()):
            errors.add_metric([code], count)
        yield errors

    def _orgs(self):
        names = ("running_jobs", "queued_jobs", "instances", "state_bytes")
        families = {n: GaugeMetricFamily(f"sqlrs_org_{n}", f"Per-org usage: {n.replace('_', ' ')}", labels=["org"])
                    for n in names}
        orgs = {o for (o,) in PrepareJob.select(PrepareJob.org).distinct().tuples()}
        orgs |= {o for (o,) in State.select(State.org).distinct().tuples()}
        for org in sorted(orgs):
            usage = quotas.usage(org)
            for name in names:
                families[name].add_metric([org], getattr(usage, name))
        yield from families.values()

    def _totals(self):
        jobs = GaugeMetricFamily("sqlrs_prepare_jobs", "Prepare jobs by status", labels=["status"])
        for status, count in (PrepareJob.select(PrepareJob.status, pw.fn.COUNT(PrepareJob.job_id))
                              .group_by(PrepareJob.status).tuples()):
            jobs.add_metric([status], count)
        yield jobs

        steps = CounterMetricFamily("sqlrs_steps", "Finished steps, by whether the cache answered them",
                                    labels=["outcome"])
        for cached, count in (Task.select(Task.cached, pw.fn.COUNT(Task.id)).join(PrepareJob)
                              .where((Task.type == "state_execute") & (Task.status == "succeeded")
                                     & (PrepareJob.plan_only == False))  # noqa: E712 (SQL, not Python)
                              .group_by(Task.cached).tuples()):
            steps.add_metric(["cache_hit" if cached else "built"], count)
        yield steps
        counts = {sample.labels["outcome"]: sample.value for sample in steps.samples}
        finished = counts.get("cache_hit", 0) + counts.get("built", 0)
        ratio = GaugeMetricFamily("sqlrs_cache_hit_ratio", "Share of finished steps the cache answered")
        ratio.add_metric([], counts.get("cache_hit", 0) / finished if finished else 0.0)
        yield ratio

        states = GaugeMetricFamily("sqlrs_states", "States recorded (each counted once, however many hosts hold it)")
        states.add_metric([], State.select(State.org, State.state_id).distinct().count())
        yield states
        copies = GaugeMetricFamily("sqlrs_state_copies", "State copies each host holds", labels=["host"])
        size = GaugeMetricFamily("sqlrs_state_bytes", "Bytes the state copies on each host refer to", labels=["host"])
        for host, count, total in (State.select(State.host, pw.fn.COUNT(State.id), pw.fn.SUM(State.size_bytes))
                                   .group_by(State.host).tuples()):
            copies.add_metric([host], count)
            size.add_metric([host], total or 0)
        yield copies
        yield size

        instances = GaugeMetricFamily("sqlrs_instances", "Instances by status", labels=["status"])
        for status, count in (Instance.select(Instance.status, pw.fn.COUNT(Instance.instance_id))
                              .group_by(Instance.status).tuples()):
            instances.add_metric([status], count)
        yield instances


def render() -> bytes:
    registry = CollectorRegistry()
    registry.register(ControlDbCollector())
    return generate_latest(registry)
