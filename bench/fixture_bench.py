"""Benchmark: what the pytest plugin's ``sqlrs_database`` fixture costs a test, with the warm pool
off and on (issue target: p50 ≤ 50 ms with the pool; IntegreSQL hands out a database in ~1 ms,
plus the one connection a test opens).

A generated suite of N tests, each taking a fresh database, opening one connection and running
one query, then working ``--test-seconds`` (a test's own time, during which the pool refills), is
run by pytest against an embedded appliance, once without and once with a warm pool. A small
pytest plugin records each test's setup and teardown durations: a test's overhead is the two
summed (the fixture's clone, plus handing it back, which the plugin does in the background). The
first test is left out: it waits for the session's prepare. Each per-test job is classified by
its events as bound from the pool or not.

Output: ``bench/out/fixture.md`` and ``fixture.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.report import percentile  # noqa: E402
from sqlrs_client import Client  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

TARGET_POOLED_MS = 50.0
BOUND = "warm pool: bound a running clone"
RECORDER = '''
import json, os
DURATIONS = {}
def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        DURATIONS.setdefault(report.nodeid, {})[report.when] = report.duration
def pytest_sessionfinish(session):
    with open(os.environ["FIXTURE_BENCH_OUT"], "w") as out:
        json.dump(DURATIONS, out)
'''


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=60, help="tests in the generated suite")
    parser.add_argument("--test-seconds", type=float, default=0.1, help="each test's own work after its query")
    parser.add_argument("--pool-size", type=int, default=4, help="the warm pool of the run with the pool")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args(argv)


def write_suite(base: Path, tests: int, test_seconds: float) -> Path:
    suite = base / "suite"
    (suite / "db").mkdir(parents=True)
    (suite / "db" / "schema.sql").write_text("create table items as select g as id from generate_series(1, 1000) g;\n")
    (suite / "pyproject.toml").write_text('[tool.sqlrs]\nprepare = "psql"\nargs = ["-f", "schema.sql"]\ndir = "db"\n\n'
                                          "[tool.pytest.ini_options]\n")
    (suite / "fixture_bench_recorder.py").write_text(RECORDER)
    (suite / "test_fixture.py").write_text(
        "import time\n\nimport psycopg2\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({tests}))\n"
        "def test_a_database_of_its_own(sqlrs_database, n):\n"
        "    with psycopg2.connect(sqlrs_database.dsn) as conn, conn.cursor() as cur:\n"
        "        cur.execute('select count(*) from items')\n        assert cur.fetchone() == (1000,)\n"
        f"    conn.close()\n    time.sleep({test_seconds})\n")
    return suite


def run_suite(app: Appliance, suite: Path, out: Path) -> dict[str, dict[str, float]]:
    env = {**os.environ, "SQLRS_URL": app.url, "SQLRS_TOKEN": app.token, "FIXTURE_BENCH_OUT": str(out),
           "PYTHONPATH": str(suite)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                             "fixture_bench_recorder"], cwd=suite, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"the generated suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return json.loads(out.read_text())


def bound_from_pool(app: Appliance) -> tuple[int, int]:
    """(per-test jobs bound from the pool, per-test jobs): every job but the session's first."""
    with Client(app.url, app.token) as client:
        jobs = sorted(client.jobs(), key=lambda j: j["created_at"])[1:]
        bound = sum(1 for job in jobs if any(e.get("message") == BOUND for e in client.events(job["job_id"])))
    return bound, len(jobs)


def measure(base: Path, name: str, pool_size: int, args: argparse.Namespace) -> dict:
    app = Appliance(base / f"data-{name}", free_tcp_port(), port_range=(29000, 29499),
                    extra_env={"SQLRS_WARM_POOL_SIZE": str(pool_size), "SQLRS_BTRFS_IMAGE_BYTES": str(4 * 1024**3)})
    try:
        app.start()
        suite = write_suite(base / name, args.tests, args.test_seconds)
        durations = run_suite(app, suite, base / f"{name}.json")
        ordered = [d for _, d in sorted(durations.items(), key=lambda kv: int(kv[0].split("[")[1].rstrip("]")))]
        overhead = [1000 * (d.get("setup", 0.0) + d.get("teardown", 0.0)) for d in ordered[1:]]
        bound, jobs = bound_from_pool(app)
    finally:
        app.destroy()
    return {"name": name, "pool_size": pool_size, "overhead_ms": overhead, "first_ms": 1000 * ordered[0]["setup"],
            "bound": bound, "jobs": jobs}


def report(runs: list[dict], args: argparse.Namespace) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"Run {when}; {machine_facts()}; {args.tests} tests, each one query then {args.test_seconds:.2f} s of "
             "its own work; embedded appliance (SQLite Control DB, btrfs store, process runtime).", "",
             "| warm pool | tests | bound from the pool | overhead p50 | p95 | first test (the session's prepare) |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        ms = run["overhead_ms"]
        lines.append(f"| {run['pool_size'] or 'off'} | {len(ms)} | {run['bound']}/{run['jobs']} "
                     f"| **{percentile(ms, 50):.1f} ms** | {percentile(ms, 95):.1f} ms | {run['first_ms']:.0f} ms |")
    off, on = runs
    ratio = percentile(on["overhead_ms"], 50) / percentile(off["overhead_ms"], 50)
    p50 = percentile(on["overhead_ms"], 50)
    lines += ["", f"With the pool / without: **{ratio:.2f}×**.", "",
              f"- per-test overhead with the pool p50 {p50:.1f} ms, target ≤ {TARGET_POOLED_MS:.0f} ms: "
              f"{'**met**' if p50 <= TARGET_POOLED_MS else '**missed**'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-fixturebench-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    try:
        runs = [measure(base, "off", 0, args), measure(base, "pool", args.pool_size, args)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    write_outputs(args.out, "fixture", report(runs, args), samples=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
