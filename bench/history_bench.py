"""Benchmark: does a Control DB that holds a year of history slow the appliance down?

For each Control DB engine (SQLite, and PostgreSQL on a throwaway server) and two histories, a
first day's (300 jobs, 300 states, 3000 audit rows: a page's worth of each list, since a list of
nothing answers faster than any page) and a year's (1 M tasks in 100 k jobs with 10 events each,
10 k states, 1 M audit rows: bench/history.py), the API the appliance serves (its app, driven in process through its
test client, with a private Redis) answers, --repeats times each: admission (POST
/v1/prepare-jobs), GET of a job, the first and the next page of every list, and a /metrics
scrape; and the reconciler makes passes. The table gives each p95 and the year / first-day ratio
(target ≤ 1.5). Writes bench/out/history.md and history.json. Run as root: `make history-bench`.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.api.app import create_app  # noqa: E402
from appliance.api.auth.tokens import ensure_admin_token, issue_token  # noqa: E402
from appliance.context import build_context  # noqa: E402
from appliance.control.db import close_database  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.control.models import PrepareJob  # noqa: E402
from appliance.orchestrator.reconciler import reconcile  # noqa: E402
from appliance.service.redis_server import PrivateRedis  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from bench.history import FIRST_DAY, YEAR, History, fill  # noqa: E402
from bench.outputs import write_outputs  # noqa: E402
from bench.prepare_bench import machine_facts  # noqa: E402
from bench.report import percentile  # noqa: E402
from tests.support.postgres import ThrowawayPostgres  # noqa: E402

TARGET_RATIO = 1.5
ORG = "org0"
LISTS = ["/v1/prepare-jobs", "/v1/tasks", "/v1/states", "/v1/instances", "/v1/audit", "/v1/projects"]


async def timed(repeats: int, request: Callable[[], Awaitable[object]]) -> list[float]:
    await request()  # warm-up: connections, statement caches
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await request()
        samples.append(time.perf_counter() - started)
    return samples


async def measure_api(ctx, repeats: int) -> dict[str, list[float]]:
    app = create_app(ctx)
    client = app.test_client()
    _, member = issue_token(ORG, name="bench", role="admin", ttl_seconds=86400, created_by="bench")
    mine = {"Authorization": f"Bearer {member}"}
    operator = {"Authorization": f"Bearer {ensure_admin_token(ctx.settings.admin_token_file, ctx.settings.default_org)}"}
    old_job = PrepareJob.select(PrepareJob.job_id).where(PrepareJob.org == ORG).order_by(PrepareJob.created_at).scalar()
    n = 0

    async def ok(response) -> object:
        body = await response.get_data()
        if response.status_code >= 300:
            raise RuntimeError(f"{response.status_code}: {body[:300]!r}")
        return response

    async def admit():
        nonlocal n
        n += 1
        body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", f"select {n}"]}
        return await ok(await client.post("/v1/prepare-jobs", json=body, headers=mine))

    results: dict[str, list[float]] = {"admission (POST /v1/prepare-jobs)": await timed(repeats, admit)}
    if old_job is None:
        old_job = PrepareJob.select(PrepareJob.job_id).where(PrepareJob.org == ORG).scalar()
    results["GET /v1/prepare-jobs/{id}"] = await timed(
        repeats, lambda: client.get(f"/v1/prepare-jobs/{old_job}", headers=mine))
    for path in LISTS:
        headers = operator if path == "/v1/audit" else mine
        results[f"GET {path} (first page)"] = await timed(repeats, lambda p=path, h=headers: _ok_get(client, p, h))
        first = await client.get(path, headers=headers)
        cursor = first.headers.get("Sqlrs-Next-Cursor")
        if cursor:
            results[f"GET {path} (next page)"] = await timed(
                repeats, lambda p=path, h=headers, c=cursor: _ok_get(client, p, h, cursor=c))
    results["GET /metrics"] = await timed(repeats, lambda: _ok_get(client, "/metrics", operator))
    return results


async def _ok_get(client, path: str, headers: dict, **query) -> object:
    response = await client.get(path, headers=headers, query_string=query)
    await response.get_data()
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code}")
    return response


def measure(url: str, engine: str, history: History, redis_url: str, repeats: int, scratch: Path) -> dict:
    settings = Settings(data_dir=scratch / f"data-{engine}-{history.jobs}", database_url=url, redis_url=redis_url,
                        storage_backend="copy", btrfs_image="off", tenant_isolation="none",
                        host_id="host-1",  # the seeded rows' host
                        # one client asking as fast as it can: the rate limits would answer 429, not the lists
                        rate_limit_per_principal=1e6, rate_limit_principal_burst=10**6,
                        rate_limit_per_org=1e6, rate_limit_org_burst=10**6)
    ctx = build_context(settings)
    try:
        migrate(ctx.db)
        started = time.perf_counter()
        fill(ctx.db, engine, history)
        print(f"[{engine}] {history.tasks:,} tasks filled in {time.perf_counter() - started:.0f} s", flush=True)
        ctx.redis.flushall()
        results = asyncio.run(measure_api(ctx, repeats))
        reconcile(ctx)  # warm-up: the first pass also repairs what the seeded rows leave (instances not running)
        passes = []
        for _ in range(max(5, repeats // 4)):
            started = time.perf_counter()
            reconcile(ctx)
            passes.append(time.perf_counter() - started)
        results["reconciler pass"] = passes
        return results
    finally:
        close_database(ctx.db)


def report(rows: dict[str, dict[str, dict[str, list[float]]]]) -> str:
    lines = []
    for engine, by_history in rows.items():
        empty, year = by_history["first day"], by_history["year"]
        lines += [f"**{engine}**", "", "| what | first day p95 | a year p95 | year / first day | target ≤ 1.5× |",
                  "|---|---|---|---|---|"]
        for what in year:
            if what not in empty:
                lines.append(f"| {what} | – | {percentile(year[what], 95) * 1000:.1f} ms | | (one page on the first day) |")
                continue
            e, y = percentile(empty[what], 95), percentile(year[what], 95)
            ratio = y / e if e else float("inf")
            lines.append(f"| {what} | {e * 1000:.1f} ms | {y * 1000:.1f} ms | {ratio:.2f}× | "
                         f"{'met' if ratio <= TARGET_RATIO else '**missed**'} |")
        lines.append("")
    return "\n".join(lines) + f"\n{machine_facts()}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=YEAR.jobs, help="jobs of the big history (10 tasks each)")
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    histories = {"first day": FIRST_DAY, "year": History(jobs=args.jobs)}
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="sqlrs-history-bench-") as tmp:
        scratch = Path(tmp)
        redis = PrivateRedis(scratch / "redis", scratch / "redis.password")
        redis.start()
        server = None
        try:
            for engine in args.engines:
                if engine == "postgresql":
                    server = ThrowawayPostgres()
                    server.start()
                for name, history in histories.items():
                    url = f"sqlite:///{scratch}/control-{name}.db" if engine == "sqlite" else server.new_database_url()
                    rows.setdefault(engine, {})[name] = measure(url, engine, history, redis.url, args.repeats, scratch)
                    print(f"[{engine}] {name}: " + ", ".join(
                        f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in rows[engine][name].items()), flush=True)
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    write_outputs(args.out, "history", report(rows), samples=[{"engine": e, "history": h, "samples": s}
                                                             for e, by in rows.items() for h, s in by.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
