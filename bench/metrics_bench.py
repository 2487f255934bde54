"""Benchmark: what a `/metrics` scrape costs with 10 tasks of history and with 1,000,000.

For each Control DB engine (SQLite, and PostgreSQL on a throwaway server) and each history
size, a scratch Control DB is migrated and filled directly with SQL: jobs of five tasks
each and ten events each (almost all finished long ago, a few queued and running, 1 % failed),
a hundred states, a few live instances and the counter rows the events would have raised.
Then the scrape (``appliance.api.metrics.render``, exactly what `GET /metrics` answers) is
timed: median of ``--scrapes`` after one unrecorded warm-up. The ratio is the 1 M median over
the 10 median: 1.0 means a scrape does not grow with history.
Writes bench/out/metrics.md and metrics.json. Run from the repo root: `make metrics-bench`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.api.metrics import render  # noqa: E402
from appliance.control import counters  # noqa: E402
from appliance.control.db import close_database, open_database, write_transaction  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.control.models import Org  # noqa: E402
from bench.outputs import write_outputs  # noqa: E402
from bench.prepare_bench import machine_facts  # noqa: E402

TASKS_PER_JOB = 5
EVENTS_PER_JOB = 10


@dataclass
class Row:
    engine: str
    tasks: int
    fill_seconds: float
    scrapes: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.scrapes)


def series(engine: str, count: int) -> str:
    """A query of rows (i) for i in 1..count, in the engine's dialect."""
    if engine == "sqlite":
        return (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
                "SELECT i FROM n")
    return f"SELECT i FROM generate_series(1, {count}) AS n(i)"


def hex_id(engine: str, expr: str) -> str:
    return f"printf('%032x', {expr})" if engine == "sqlite" else f"lpad(to_hex({expr}), 32, '0')"


def fill(db, engine: str, tasks: int) -> None:
    """History of ``tasks`` tasks (``tasks / 5`` jobs), straight into the tables."""
    jobs = max(1, tasks // TASKS_PER_JOB)
    job_id = hex_id(engine, "i")
    old = "'2020-01-01 00:00:00'"
    status = ("CASE WHEN i % 1000 = 1 THEN 'queued' WHEN i % 1000 = 2 THEN 'running' "
              "WHEN i % 100 = 3 THEN 'failed' ELSE 'succeeded' END")
    def run(sql: str) -> None:
        db.execute_sql(sql if engine == "sqlite" else sql.replace("%", "%%"))  # psycopg2 reads % as a parameter

    with write_transaction(db):
        run(
            "INSERT INTO prepare_job (job_id, org, status, prepare_kind, image_id, plan_only, request_json, work_dir, "
            "instance_ttl_seconds, priority, cancel_requested, created_at, finished_at, host_id, error_code) "
            f"SELECT {job_id}, 'org' || (i % 5), {status}, 'psql', 'postgres:15', false, '{{}}', '.', 3600, 0, false, "
            f"{old}, {old}, 'host-1', CASE WHEN i % 100 = 3 THEN 'step_failed' END FROM ({series(engine, jobs)}) s")
        for position in range(TASKS_PER_JOB):
            run(
                "INSERT INTO task (job_id, task_id, position, type, status, cached, duration_seconds) "
                f"SELECT {job_id}, 'execute-{position}', {position}, 'state_execute', 'succeeded', "
                f"i % 2 = 0, 0.5 FROM ({series(engine, jobs)}) s")
        run(
            "INSERT INTO job_event (job_id, seq, ts, type, status) "
            f"SELECT {hex_id(engine, 'i / ' + str(EVENTS_PER_JOB) + ' + 1')}, i % {EVENTS_PER_JOB}, {old}, 'log', null "
            f"FROM ({series(engine, jobs * EVENTS_PER_JOB)}) s WHERE i / {EVENTS_PER_JOB} + 1 <= {jobs}")
        run(
            "INSERT INTO state (org, state_id, image_id, prepare_kind, task_hash, size_bytes, host, snapshot_seconds, "
            f"created_at, last_used_at, use_count) SELECT 'org' || (i % 5), {hex_id(engine, 'i')}, 'postgres:15', "
            f"'psql', 'h', 1048576, 'host-1', 0.05, {old}, {old}, 1 FROM ({series(engine, 100)}) s")
        run(
            "INSERT INTO instance (instance_id, org, state_id, image_id, job_id, volume_id, status, host, host_id, "
            f"port, password, created_at, expires_at) SELECT {hex_id(engine, 'i')}, 'org' || (i % 5), "
            f"{hex_id(engine, 'i')}, 'postgres:15', {hex_id(engine, 'i')}, {hex_id(engine, 'i')}, 'active', "
            f"'127.0.0.1', 'host-1', 7000 + i, 'x', {old}, '2999-01-01 00:00:00' FROM ({series(engine, 10)}) s")
        Org.insert_many([{"slug": f"org{n}"} for n in range(5)]).execute()
        # What the events would have raised; a handful of rows whatever the history holds.
        counters.increment(counters.STEPS, {"outcome": "built"}, jobs * TASKS_PER_JOB / 2)
        counters.increment(counters.STEPS, {"outcome": "cache_hit"}, jobs * TASKS_PER_JOB / 2)
        counters.increment(counters.JOB_ERRORS, {"code": "step_failed"}, max(1, jobs // 100))
        counters.increment(counters.JOBS_FINISHED, {"status": "succeeded"}, jobs)
        for kind in ("build", "cache_hit", "bind"):
            counters.observe(counters.TASK_DURATION, 0.5, {"kind": kind})
        counters.observe(counters.SNAPSHOT_DURATION, 0.05)
    db.execute_sql("ANALYZE")  # as autovacuum (PostgreSQL) or a long-lived database would have


def measure(url: str, engine: str, tasks: int, scrapes: int) -> Row:
    db = open_database(url)
    try:
        migrate(db)
        started = time.perf_counter()
        fill(db, engine, tasks)
        row = Row(engine, tasks, time.perf_counter() - started)
        print(f"[{engine}] {tasks:,} tasks filled in {row.fill_seconds:.1f} s", flush=True)
        render()  # warm-up: connection, statement caches
        for _ in range(scrapes):
            started = time.perf_counter()
            render()
            row.scrapes.append(time.perf_counter() - started)
        print(f"[{engine}] {tasks:,} tasks: scrape median {row.median * 1000:.1f} ms", flush=True)
        return row
    finally:
        close_database(db)


def report(rows: list[Row], sizes: list[int]) -> str:
    lines = ["| Control DB | " + " | ".join(f"scrape, {n:,} tasks (median)" for n in sizes)
             + f" | ratio {sizes[-1]:,} / {sizes[0]:,} |", "|---|" + "---|" * (len(sizes) + 1)]
    for engine in dict.fromkeys(r.engine for r in rows):
        mine = {r.tasks: r for r in rows if r.engine == engine}
        lines.append(f"| {engine} | " + " | ".join(f"{mine[n].median * 1000:.1f} ms" for n in sizes)
                     + f" | {mine[sizes[-1]].median / mine[sizes[0]].median:.2f} |")
    return "\n".join(lines) + f"\n\n{machine_facts()}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000_000])
    parser.add_argument("--scrapes", type=int, default=21)
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sqlrs-metrics-bench-") as scratch:
        if "sqlite" in args.engines:
            for n in args.sizes:
                rows.append(measure(f"sqlite:///{scratch}/control-{n}.db", "sqlite", n, args.scrapes))
        if "postgresql" in args.engines:
            from tests.conftest import ThrowawayPostgres
            server = ThrowawayPostgres()
            server.start()
            try:
                for n in args.sizes:
                    rows.append(measure(server.new_database_url(), "postgresql", n, args.scrapes))
            finally:
                server.stop()
    write_outputs(args.out, "metrics", report(rows, args.sizes), samples=rows)


if __name__ == "__main__":
    main()
