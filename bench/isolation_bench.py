"""Benchmark: what tenant isolation costs a cache hit, before (``none``) and after (``os``).

Each series is a fresh embedded appliance (btrfs, the runtime given) with the warm pool off
(a hit clones the state and starts Postgres: with ``os`` isolation the start runs in the
org's sandbox) and on (a hit binds a running clone). The same requests as `make runtime-bench`
(POST -> poll -> TCP ``select 1``, instance deleted before the next), both isolation levels in
one run, so the ratio compares like with like. A same-org clone is not re-owned, so state size
does not enter the cost; the cold clone of a state shared by another org is re-owned file by
file (not measured here). Writes bench/out/isolation.md and isolation.json. Run as root:
`make isolation-bench`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import machine_facts  # noqa: E402
from bench.report import percentile  # noqa: E402
from bench.runtime_bench import Series, run_series, runtime_env  # noqa: E402

LEVELS = ("none", "os")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtimes", default="process", help="comma-separated: process,docker,nomad")
    p.add_argument("--requests", type=int, default=20, help="timed cache hits per series")
    p.add_argument("--pool-size", type=int, default=2, help="SQLRS_WARM_POOL_SIZE for the pooled runs")
    p.add_argument("--refill-timeout", type=float, default=30.0, help="longest wait for a full pool")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return p.parse_args(argv)


def table(results: dict[tuple[str, int, str], Series]) -> str:
    lines = ["| runtime | warm pool | isolation | n | p50 to DSN | p95 to DSN | p50 vs none |",
             "|---|---|---|---|---|---|---|"]
    for (runtime, pool, level), series in results.items():
        secs = [s.seconds for s in series.of(bool(pool))] or [s.seconds for s in series.samples]
        base = results[(runtime, pool, "none")]
        base_secs = [s.seconds for s in base.of(bool(pool))] or [s.seconds for s in base.samples]
        ratio = percentile(secs, 50) / percentile(base_secs, 50)
        lines.append(f"| {runtime} | {'size ' + str(pool) if pool else 'off'} | {level} | {len(secs)} "
                     f"| **{percentile(secs, 50) * 1000:.0f} ms** | {percentile(secs, 95) * 1000:.0f} ms "
                     f"| {ratio:.2f}× |")
    return "\n".join(lines)


def write_chart(results: dict[tuple[str, int, str], Series], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = list(dict.fromkeys((runtime, pool) for runtime, pool, _ in results))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for offset, level in ((-width / 2, "none"), (width / 2, "os")):
        p50s = []
        for runtime, pool in groups:
            series = results[(runtime, pool, level)]
            secs = [s.seconds for s in series.of(bool(pool))] or [s.seconds for s in series.samples]
            p50s.append(percentile(secs, 50))
        bars = ax.bar([i + offset for i in range(len(groups))], p50s, width, label=f"isolation {level}")
        ax.bar_label(bars, labels=[f"{v * 1000:.0f} ms" for v in p50s], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), [f"{r}, pool {'off' if not p else p}" for r, p in groups])
    ax.set_ylabel("p50 seconds from POST to select 1")
    ax.set_title("sqlrs cache hit without and with tenant isolation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-isobench-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    started = time.perf_counter()
    results: dict[tuple[str, int, str], Series] = {}
    try:
        for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
            with runtime_env(runtime) as env:
                for pool in (0, args.pool_size):
                    for level in LEVELS:  # interleaved, so drift on the machine hits both alike
                        (base / level).mkdir(exist_ok=True)
                        results[(runtime, pool, level)] = run_series(
                            runtime, pool, args.requests, args.refill_timeout, base / level,
                            {**env, "SQLRS_TENANT_ISOLATION": level})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = f"Run {when}, {time.perf_counter() - started:.0f} s in all; {machine_facts()}.\n\n{table(results)}\n"
    write_outputs(args.out, "isolation", text, chart=lambda path: write_chart(results, path),
                  samples=list(results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
