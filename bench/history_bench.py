"""Benchmark: does a Control DB that holds a year of history slow the appliance down?

For each Control DB engine (SQLite, and PostgreSQL on a throwaway server) and two histories, a
first day's (300 jobs, 300 states, 3000 audit rows: a page's worth of each list, since a list of
nothing answers faster than any page) and a year's (1 M tasks in 100 k jobs with 10 events each,
10 k states, 1 M audit rows: bench/history.py), each settled as a long-lived database is (statistics,
vacuum, checkpoint), the API the appliance serves (its app, driven in process through its test
client, with a private Redis) answers, --repeats times each and the two histories taking turns:
admission (POST /v1/prepare-jobs), GET of a job, the first and the next page of every list, and a
/metrics scrape; and the reconciler makes passes. The table gives each p95 and the year /
first-day ratio (target ≤ 1.5). Writes bench/out/history.md and history.json. Run as root:
`make history-bench`.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.api.app import create_app  # noqa: E402
from appliance.api.auth.tokens import ensure_admin_token, issue_token  # noqa: E402
from appliance.context import AppContext, build_context  # noqa: E402
from appliance.control.db import close_database  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.control.models import PrepareJob, database_proxy  # noqa: E402
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


Request = Callable[[], Awaitable[object]]


@dataclass
class Subject:
    """One Control DB with its history, the app serving it, and what to ask it."""
    name: str
    ctx: AppContext
    requests: dict[str, Request] = field(default_factory=dict)

    def use(self) -> None:
        """The models answer from this Control DB (the two histories take turns in one process)."""
        database_proxy.initialize(self.ctx.db)


def settings_for(url: str, data_dir: Path, redis_url: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, redis_url=redis_url, storage_backend="copy", btrfs_image="off",
                    tenant_isolation="none", host_id="host-1",  # the seeded rows' host
                    # one client asking as fast as it can: the rate limits would answer 429, not the lists
                    rate_limit_per_principal=1e6, rate_limit_principal_burst=10**6,
                    rate_limit_per_org=1e6, rate_limit_org_burst=10**6,
                    quota_max_queued_jobs=10**6)  # the timed admissions stay queued: no worker runs here


def settle(db, engine: str) -> None:
    """What a long-lived database has done by itself: statistics gathered, dead rows vacuumed, the
    WAL checkpointed, so that no autovacuum or checkpoint of the fill runs while requests are timed."""
    if engine == "postgresql":
        db.execute_sql("VACUUM ANALYZE")
        db.execute_sql("CHECKPOINT")
    else:
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")


async def subject(name: str, engine: str, history: History, url: str, redis_url: str, scratch: Path) -> Subject:
    ctx = build_context(settings_for(url, scratch / f"data-{engine}-{history.jobs}", redis_url))
    migrate(ctx.db)
    started = time.perf_counter()
    fill(ctx.db, engine, history)
    settle(ctx.db, engine)
    print(f"[{engine}] {name}: {history.tasks:,} tasks filled in {time.perf_counter() - started:.0f} s", flush=True)
    found = Subject(name, ctx)
    found.use()
    found.requests = await requests(ctx)
    return found


async def requests(ctx: AppContext) -> dict[str, Request]:
    """Each request the table times, by name; a next page where the history has one."""
    client = create_app(ctx).test_client()
    _, member = issue_token(ORG, name="bench", role="admin", ttl_seconds=86400, created_by="bench")
    mine = {"Authorization": f"Bearer {member}"}
    operator = {"Authorization": f"Bearer {ensure_admin_token(ctx.settings.admin_token_file, ctx.settings.default_org)}"}
    old_job = PrepareJob.select(PrepareJob.job_id).where(PrepareJob.org == ORG).order_by(PrepareJob.created_at).scalar()
    n = 0

    async def admit():
        nonlocal n
        n += 1
        body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", f"select {n}"]}
        response = await client.post("/v1/prepare-jobs", json=body, headers=mine)
        if response.status_code != 201:
            raise RuntimeError(f"admission: {response.status_code}: {(await response.get_data())[:300]!r}")

    found: dict[str, Request] = {
        "admission (POST /v1/prepare-jobs)": admit,
        "GET /v1/prepare-jobs/{id}": lambda: _ok_get(client, f"/v1/prepare-jobs/{old_job}", mine)}
    for path in LISTS:
        headers = operator if path == "/v1/audit" else mine
        found[f"GET {path} (first page)"] = lambda p=path, h=headers: _ok_get(client, p, h)
        cursor = (await client.get(path, headers=headers)).headers.get("Sqlrs-Next-Cursor")
        if cursor:
            found[f"GET {path} (next page)"] = lambda p=path, h=headers, c=cursor: _ok_get(client, p, h, cursor=c)
    found["GET /metrics"] = lambda: _ok_get(client, "/metrics", operator)

    async def reconciler_pass():
        await asyncio.to_thread(reconcile, ctx)
    reconcile(ctx)  # the first pass repairs what the seeded rows leave (instances not running): not timed
    found["reconciler pass"] = reconciler_pass
    return found


async def _ok_get(client, path: str, headers: dict, **query) -> object:
    response = await client.get(path, headers=headers, query_string=query)
    await response.get_data()
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code}")
    return response


async def interleaved(subjects: list[Subject], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Each request, ``repeats`` times, the histories taking turns, so that whatever else the
    machine does meanwhile slows both alike; one unrecorded warm-up each (connections, caches)."""
    samples: dict[str, dict[str, list[float]]] = {s.name: {} for s in subjects}
    for what in subjects[-1].requests:
        asked = [s for s in subjects if what in s.requests]
        for s in asked:
            s.use()
            await s.requests[what]()
        for _ in range(repeats):
            for s in asked:
                s.use()
                started = time.perf_counter()
                await s.requests[what]()
                samples[s.name].setdefault(what, []).append(time.perf_counter() - started)
    return samples


async def measure(engine: str, urls: dict[str, str], redis_url: str, repeats: int, scratch: Path,
                  jobs: int) -> dict[str, dict[str, list[float]]]:
    histories = {"first day": FIRST_DAY, "year": History(jobs=jobs)}
    subjects = [await subject(name, engine, history, urls[name], redis_url, scratch)
                for name, history in histories.items()]
    try:
        return await interleaved(subjects, repeats)
    finally:
        for s in subjects:
            close_database(s.ctx.db)


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
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=YEAR.jobs, help="jobs of the big history (10 tasks each)")
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
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
                urls = {name: f"sqlite:///{scratch}/control-{name.replace(' ', '-')}.db" if server is None
                        else server.new_database_url() for name in ("first day", "year")}
                rows[engine] = asyncio.run(measure(engine, urls, redis.url, args.repeats, scratch, args.jobs))
                for name, samples in rows[engine].items():
                    print(f"[{engine}] {name}: " + ", ".join(
                        f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in samples.items()), flush=True)
                if server is not None:
                    server.stop()
                    server = None
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    write_outputs(args.out, "history", report(rows), samples=[{"engine": e, "history": h, "samples": s}
                                                             for e, by in rows.items() for h, s in by.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
