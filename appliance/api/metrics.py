"""Prometheus metrics, read from the Control DB at scrape time.

The workers are separate processes; counting in the DB instead of in each process's memory
means every scrape sees the whole appliance, and a restarted process loses nothing.
"""
from __future__ import annotations

import peewee as pw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..control.models import Instance, PrepareJob, State, Task


class ControlDbCollector:
    def collect(self):
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
