"""A Control DB with history, written straight into the tables with SQL (minutes for millions of
rows instead of hours through the API): jobs of several tasks and events each, states, a few
live instances, audit rows, and the counter rows those events would have raised.

Jobs are spread over the last ``days`` (inside the default retention, so a reconciler pass
prunes nothing): 1 % failed, the rest succeeded, but the newest job queued and the one before it
running, whatever the history (the length of the queue is load, not history). States form chains
of ten in each org, each state on its parent as a prepare's steps are. Rows belong to five orgs,
``org0`` … ``org4``.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.control import counters
from appliance.control.db import write_transaction
from appliance.control.models import Org

ORGS = [f"org{n}" for n in range(5)]


@dataclass(frozen=True)
class History:
    jobs: int
    tasks_per_job: int = 10
    events_per_job: int = 10
    states: int = 10_000
    audit_rows: int = 1_000_000
    instances: int = 10
    days: int = 25

    @property
    def tasks(self) -> int:
        return self.jobs * self.tasks_per_job


# The baseline: a first day, with a page's worth of each list (a list of none answers faster than
# any page; what must not grow is the cost of a page as history piles up).
FIRST_DAY = History(jobs=300, states=300, audit_rows=3000, instances=10, days=1)
YEAR = History(jobs=100_000)  # 1 M tasks, 1 M events, 10 k states, 1 M audit rows


def series(engine: str, count: int) -> str:
    """A query of rows (i) for i in 1..count, in the engine's dialect."""
    if engine == "sqlite":
        return (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
                "SELECT i FROM n")
    return f"SELECT i FROM generate_series(1, {count}) AS n(i)"


def hex_id(engine: str, expr: str, width: int = 32) -> str:
    return f"printf('%0{width}x', {expr})" if engine == "sqlite" else f"lpad(to_hex({expr}), {width}, '0')"


def days_ago(engine: str, expr: str) -> str:
    """A timestamp ``expr`` (a number, may be fractional) days before now."""
    if engine == "sqlite":
        return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({expr}) || ' days')"
    return f"(now() at time zone 'utc') - ({expr}) * interval '1 day'"


def fill(db, engine: str, history: History) -> None:
    """``history``'s rows, straight into the tables of a migrated Control DB."""
    def run(sql: str) -> None:
        db.execute_sql(sql if engine == "sqlite" else sql.replace("%", "%%"))  # psycopg2 reads % as a parameter

    jobs, job_id = history.jobs, hex_id(engine, "i")
    when = days_ago(engine, f"{history.days}.0 * ({jobs} - i) / {max(jobs, 1)}")  # oldest first, up to now
    status = (f"CASE WHEN i = {jobs} THEN 'queued' WHEN i = {jobs} - 1 THEN 'running' "
              "WHEN i % 100 = 3 THEN 'failed' ELSE 'succeeded' END")
    with write_transaction(db):
        Org.insert_many([{"slug": org} for org in ORGS]).on_conflict_ignore().execute()
        if jobs:
            run("INSERT INTO prepare_job (job_id, org, status, prepare_kind, image_id, plan_only, request_json, "
                "work_dir, instance_ttl_seconds, priority, cancel_requested, created_at, started_at, finished_at, "
                "heartbeat_at, host_id, error_code) "
                f"SELECT {job_id}, 'org' || (i % 5), {status}, 'psql', 'postgres:15', false, '{{}}', '.', 3600, 0, "
                f"false, {when}, {when}, {when}, {when}, 'host-1', CASE WHEN i % 100 = 3 THEN 'step_failed' END "
                f"FROM ({series(engine, jobs)}) s")
            for position in range(history.tasks_per_job):
                run("INSERT INTO task (job_id, task_id, position, type, status, cached, duration_seconds) "
                    f"SELECT {job_id}, 'execute-{position}', {position}, 'state_execute', 'succeeded', "
                    f"i % 2 = 0, 0.5 FROM ({series(engine, jobs)}) s")
            per = history.events_per_job
            run("INSERT INTO job_event (job_id, seq, ts, type, status) "
                f"SELECT {hex_id(engine, f'(i - 1) / {per} + 1')}, (i - 1) % {per}, "
                f"{days_ago(engine, '1')}, 'log', null FROM ({series(engine, jobs * per)}) s")
        if history.states:
            # older states have higher numbers; a parent is 5 older (the same org), every 50th five are roots
            parent = f"CASE WHEN (i - 1) % 50 >= 45 THEN NULL ELSE {hex_id(engine, 'i + 5', 64)} END"
            run("INSERT INTO state (org, state_id, parent_state_id, image_id, prepare_kind, task_hash, size_bytes, "
                "host, snapshot_seconds, created_at, last_used_at, use_count) "
                f"SELECT 'org' || (i % 5), {hex_id(engine, 'i', 64)}, {parent}, 'postgres:15', 'psql', 'h', 1048576, "
                "'host-1', "
                f"0.05, {days_ago(engine, '30.0 * i / ' + str(history.states))}, {days_ago(engine, '1')}, 1 "
                f"FROM ({series(engine, history.states)}) s")
        if history.instances:
            run("INSERT INTO instance (instance_id, org, state_id, image_id, job_id, volume_id, status, host, host_id, "
                f"port, password, created_at, expires_at, teardown_attempts) SELECT {hex_id(engine, 'i')}, 'org' || (i % 5), "
                f"{hex_id(engine, 'i', 64)}, 'postgres:15', {hex_id(engine, 'i')}, {hex_id(engine, 'i')}, 'active', "
                f"'127.0.0.1', 'host-1', 7000 + i, 'x', {days_ago(engine, '1')}, '2999-01-01 00:00:00', 0 "
                f"FROM ({series(engine, history.instances)}) s")
        if history.audit_rows:
            run("INSERT INTO audit_event (at, org, actor, action, object_kind, object_id, outcome) "
                f"SELECT {days_ago(engine, '300.0 * (' + str(history.audit_rows) + ' - i) / ' + str(history.audit_rows))}, "
                f"'org' || (i % 5), 'user', 'prepare.submitted', 'job', {hex_id(engine, 'i')}, 'ok' "
                f"FROM ({series(engine, history.audit_rows)}) s")
        if jobs:  # what the events would have raised: a handful of rows, whatever the history holds
            counters.increment(counters.STEPS, {"outcome": "built"}, history.tasks / 2)
            counters.increment(counters.STEPS, {"outcome": "cache_hit"}, history.tasks / 2)
            counters.increment(counters.JOB_ERRORS, {"code": "step_failed"}, max(1, jobs // 100))
            counters.increment(counters.JOBS_FINISHED, {"status": "succeeded"}, jobs)
            for kind in ("build", "cache_hit", "bind"):
                counters.observe(counters.TASK_DURATION, 0.5, {"kind": kind})
            counters.observe(counters.SNAPSHOT_DURATION, 0.05)
    db.execute_sql("ANALYZE")  # as autovacuum (PostgreSQL) or a long-lived database would have
