"""Benchmark: cache-hit time to a usable DSN per runtime, with and without the warm pool.

For each runtime (process, docker, nomad through the Nomad-API double) a fresh embedded
appliance is started twice: once with the warm pool off (every hit clones and starts
Postgres) and once with ``SQLRS_WARM_POOL_SIZE=N`` (a hit binds a running clone). Each
request is POST /v1/prepare-jobs -> poll -> TCP ``select 1`` on the DSN; its instance is
deleted before the next. With the pool on, requests are paced: after each delete the bench
waits until the pool of the state is full again, and every request is classified by its
job's events ("warm pool: bound a running clone") so pool hits and misses are reported apart.
Writes bench/out/runtimes.md, runtimes.png and runtimes.json. Run as root: `make runtime-bench`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.settings import Settings  # noqa: E402
from bench.cache_hit import ApiSession, phases  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.report import percentile  # noqa: E402
from bench.workloads import SMALL_ROWS, write_workload  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

POOL_BOUND_MESSAGE = "warm pool: bound a running clone"
TARGET_COLD_SECONDS, TARGET_POOL_SECONDS = 0.3, 0.03
INSTANCE_PORTS = (29200, 29399)
PREPARE_PHASE = "prepare_instance (clone, pg start, password)"


@dataclass
class Sample:
    seconds: float
    prepare_instance: float  # the server-side task: clone + start + password, or bind
    from_pool: bool
    refill_wait: float = 0.0  # pacing after the request (not part of ``seconds``)
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Series:
    runtime: str
    pool_size: int
    samples: list[Sample] = field(default_factory=list)
    refill_timeouts: int = 0

    def of(self, from_pool: bool) -> list[Sample]:
        return [s for s in self.samples if s.from_pool == from_pool]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtimes", default="process,docker,nomad", help="comma-separated")
    p.add_argument("--requests", type=int, default=50, help="measured requests per runtime and mode")
    p.add_argument("--pool-size", type=int, default=2, help="SQLRS_WARM_POOL_SIZE for the pooled runs")
    p.add_argument("--refill-timeout", type=float, default=30.0, help="seconds to wait for a full pool")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return p.parse_args(argv)


@contextlib.contextmanager
def runtime_env(runtime: str) -> Iterator[dict[str, str]]:
    """The appliance settings that select a runtime, exactly as the e2e suite wires them."""
    if runtime == "process":
        yield {}
        return
    from tests.support.docker import ensure_image, require_docker, running_nomad_double
    require_docker()
    ensure_image(Settings.model_fields["docker_image"].default)
    if runtime == "docker":
        yield {"SQLRS_RUNTIME": "docker"}
        return
    with running_nomad_double() as double:
        yield {"SQLRS_RUNTIME": "nomad", "SQLRS_NOMAD_ADDR": double.addr, "SQLRS_NOMAD_TOKEN": double.token,
               "SQLRS_NOMAD_NAMESPACE": double.namespace, "SQLRS_NOMAD_NODE_ID": double.node_id}


def pooled_count(app: Appliance, state_id: str) -> int:
    """Read-only look at the Control DB: the API hides unbound pool clones on purpose."""
    db = sqlite3.connect(f"file:{app.data_dir / 'control.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("select count(*) from instance where state_id = ? and status = 'pooled'",
                          (state_id,)).fetchone()[0]
    finally:
        db.close()


def wait_for_pool(app: Appliance, state_id: str, size: int, timeout: float) -> tuple[float, bool]:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if pooled_count(app, state_id) >= size:
            return time.perf_counter() - started, True
        time.sleep(0.05)
    return time.perf_counter() - started, False


def one_request(api: ApiSession, body: dict[str, Any]) -> tuple[Sample, str, str]:
    """Submit, poll, connect: returns the sample, the instance id and the state id."""
    status, t_submit, t_accepted, t_seen = api.run_job(body, timeout=120)
    conn = psycopg2.connect(status["result"]["dsn"], connect_timeout=10)
    with conn.cursor() as cur:
        cur.execute("select 1")
        cur.fetchone()
    t_done = time.time()
    conn.close()
    status = api.full_status(status)
    split = phases(status, t_submit, t_accepted, t_seen, t_done)
    events = api.client.get(f"/v1/prepare-jobs/{status['job_id']}/events").text
    sample = Sample(seconds=t_done - t_submit, prepare_instance=split.get(PREPARE_PHASE, 0.0),
                    from_pool=POOL_BOUND_MESSAGE in events, phases=split)
    return sample, status["result"]["instance_id"], status["result"]["state_id"]


def run_series(runtime: str, pool_size: int, requests: int, refill_timeout: float, base: Path,
               env: dict[str, str]) -> Series:
    series = Series(runtime, pool_size)
    tag = f"{runtime}-pool{pool_size}"
    extra = {**env, "SQLRS_BTRFS_IMAGE_BYTES": str(8 * 1024**3), "SQLRS_WARM_POOL_SIZE": str(pool_size),
             # no reconciler pass inside a measurement: the pool is refilled by the RQ job every
             # prepare enqueues, and the bench deletes its own instances
             "SQLRS_RECONCILE_INTERVAL_SECONDS": "3600"}
    app = Appliance(base / f"data-{tag}", free_tcp_port(), port_range=INSTANCE_PORTS, extra_env=extra)
    api: ApiSession | None = None
    try:
        app.start()
        api = ApiSession(app.url, app.token)
        body = api.upload(write_workload(f"small-{tag}", SMALL_ROWS, base))
        started = time.perf_counter()
        first, *_ = api.run_job(body, timeout=600)
        api.delete_instance(first["result"]["instance_id"])
        state_id = first["result"]["state_id"]
        print(f"[{tag}] built the state in {time.perf_counter() - started:.1f} s", flush=True)
        for i in range(requests + 1):  # the first one is a warm-up
            if pool_size:
                waited, full = wait_for_pool(app, state_id, pool_size, refill_timeout)
                if not full:
                    series.refill_timeouts += 1
            sample, instance_id, _ = one_request(api, body)
            api.delete_instance(instance_id)
            if pool_size:
                sample.refill_wait = waited
            if i:
                series.samples.append(sample)
            print(f"[{tag}] {'warm-up' if not i else f'{i}/{requests}'}: {sample.seconds * 1000:.0f} ms"
                  f"{' (from pool)' if sample.from_pool else ''}", flush=True)
    except BaseException:
        print(f"--- tail of the appliance log ---\n{app.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if api is not None:
            api.close()
        app.destroy()
    return series


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f} ms" if values else "–"


def results_table(all_series: list[Series]) -> str:
    lines = ["| runtime | warm pool | requests served | n | p50 to DSN | p95 to DSN | prepare_instance p50 "
             "| pool hit rate | target | met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in all_series:
        groups = [(False, "cold clone")] if not s.pool_size else [(True, "bound from pool"), (False, "pool empty: cold clone")]
        hit_rate = f"{len(s.of(True))}/{len(s.samples)}" if s.pool_size else "–"
        for from_pool, label in groups:
            picked = s.of(from_pool)
            if s.pool_size and not from_pool and not picked:
                continue
            secs = [x.seconds for x in picked]
            target = TARGET_POOL_SECONDS if from_pool else TARGET_COLD_SECONDS
            met = "–" if not secs else ("met" if percentile(secs, 50) <= target else "**missed**")
            lines.append(f"| {s.runtime} | {'size ' + str(s.pool_size) if s.pool_size else 'off'} | {label} "
                         f"| {len(picked)} | **{_ms(secs, 50)}** | {_ms(secs, 95)} "
                         f"| {_ms([x.prepare_instance for x in picked], 50)} | {hit_rate} "
                         f"| p50 ≤ {target * 1000:.0f} ms | {met} |")
    pacing = [f"{s.runtime}: p50 {_ms([x.refill_wait for x in s.samples], 50)}, max "
              f"{max(x.refill_wait for x in s.samples) * 1000:.0f} ms, timeouts {s.refill_timeouts}"
              for s in all_series if s.pool_size and s.samples]
    if pacing:
        lines += ["", "Pacing (wait for a full pool before each pooled request, not timed): " + "; ".join(pacing) + "."]
    return "\n".join(lines)


def phase_table(all_series: list[Series]) -> str:
    """Median of each phase, per runtime and kind of request: where a miss spends its time."""
    columns = [(s, from_pool) for s in all_series for from_pool in ((True, False) if s.pool_size else (False,))
               if s.of(from_pool) and (from_pool or not s.pool_size)]
    names = list(dict.fromkeys(k for s, f in columns for x in s.of(f) for k in x.phases))
    head = [f"{s.runtime} {'pool' if f else 'cold'}" for s, f in columns]
    lines = ["| phase (median ms) | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name in names:
        cells = [f"{percentile([x.phases.get(name, 0.0) for x in s.of(f)], 50) * 1000:.0f}" for s, f in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_chart(all_series: list[Series], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    runtimes = list(dict.fromkeys(s.runtime for s in all_series))
    modes = [("warm pool off", lambda s: s.samples if not s.pool_size else [], "#4f81bd"),
             ("warm pool: bound", lambda s: s.of(True) if s.pool_size else [], "#9bbb59")]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    width = 0.35
    for i, (label, pick, color) in enumerate(modes):
        xs, p50s, p95s = [], [], []
        for j, runtime in enumerate(runtimes):
            secs = [x.seconds for s in all_series if s.runtime == runtime for x in pick(s)]
            if secs:
                xs.append(j + (i - 0.5) * width)
                p50s.append(percentile(secs, 50))
                p95s.append(percentile(secs, 95))
        bars = ax.bar(xs, p50s, width, label=f"{label}: p50 (whisker p95)", color=color,
                      yerr=[[0] * len(p50s), [b - a for a, b in zip(p50s, p95s)]], capsize=4)
        ax.bar_label(bars, labels=[f"{v * 1000:.0f} ms" for v in p50s], fontsize=7, padding=2)
    ax.axhline(TARGET_COLD_SECONDS, color="#4f81bd", linestyle="--", linewidth=1, label="target cold 0.3 s")
    ax.axhline(TARGET_POOL_SECONDS, color="#9bbb59", linestyle="--", linewidth=1, label="target pool 0.03 s")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} s"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("seconds from POST to select 1 (log scale)")
    ax.set_xticks(range(len(runtimes)), runtimes)
    ax.set_title("sqlrs cache hit per runtime, with and without the warm pool")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-rtbench-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    started = time.perf_counter()
    all_series: list[Series] = []
    try:
        for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
            with runtime_env(runtime) as env:
                for pool_size in (0, args.pool_size):
                    all_series.append(run_series(runtime, pool_size, args.requests, args.refill_timeout, base, env))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (f"Run {when}, {time.perf_counter() - started:.0f} s in all; {machine_facts()}.\n\n"
            f"{results_table(all_series)}\n\n{phase_table(all_series)}\n")
    write_outputs(args.out, "runtimes", text, chart=lambda path: write_chart(all_series, path),
                  samples=all_series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
