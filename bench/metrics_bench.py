"""Benchmark: what a `/metrics` scrape costs with 10 tasks of history and with 1,000,000.

For each Control DB engine (SQLite, and PostgreSQL on a throwaway server) and each history
size, a scratch Control DB is migrated and filled directly with SQL (bench/history.py): jobs of
five tasks and ten events each (a few queued and running, 1 % failed, the rest succeeded), a
hundred states, a few live instances and the counter rows the events would have raised.
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

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from appliance.api.metrics import ControlDbCollector  # noqa: E402
from appliance.control.db import close_database, open_database  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from bench.history import History, fill  # noqa: E402
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


def render() -> bytes:
    """The Control DB's part of a scrape (what grows with history; the rest is Redis and memory)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlDbCollector(Settings()))
    return generate_latest(registry)


def measure(url: str, engine: str, tasks: int, scrapes: int) -> Row:
    db = open_database(url)
    try:
        migrate(db)
        started = time.perf_counter()
        fill(db, engine, History(jobs=max(1, tasks // TASKS_PER_JOB), tasks_per_job=TASKS_PER_JOB,
                                 events_per_job=EVENTS_PER_JOB, states=100, audit_rows=0))
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
            from tests.support.postgres import ThrowawayPostgres
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
