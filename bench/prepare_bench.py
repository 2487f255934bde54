"""Benchmark: time to a usable DSN, rebuilding from scripts vs a cache hit through the API.

For a small (a few MB) and a large (>= 1 GiB of table heap) state, in one run:
  (a) rebuild the classic way: initdb + pg_ctl start + psql -f schema.sql -f data.sql + select 1;
  (b) a cache hit through a real embedded appliance: POST /v1/prepare-jobs -> poll -> select 1
      on the DSN (p50/p95 over N repetitions, each instance deleted before the next);
  (c) the raw floor: btrfs subvolume snapshot of the state + pg_ctl start.
Writes a markdown table to stdout and bench/out/results.md, a chart to bench/out/prepare.png and
every sample to bench/out/samples.json.
It is a benchmark, not a test: run it with `make bench` (as root: it mounts a btrfs image).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.storage.image import filesystem_type  # noqa: E402
from bench.cache_hit import ApiSession  # noqa: E402
from bench.floor import RawFloor  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.rebuild import ClassicRebuild  # noqa: E402
from bench.report import SizeRow, dominant_phases, phase_table, results_table, write_chart  # noqa: E402
from bench.workloads import LARGE_ROWS, SMALL_ROWS, write_workload  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

ONE_GIB = 1024**3
INSTANCE_PORTS = (29000, 29199)
ORG = "default"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small-hits", type=int, default=15, help="cache-hit repetitions, small state")
    p.add_argument("--large-hits", type=int, default=10, help="cache-hit repetitions, large state")
    p.add_argument("--small-rebuilds", type=int, default=3, help="rebuild repetitions, small state")
    p.add_argument("--large-rebuilds", type=int, default=1, help="rebuild repetitions, large state")
    p.add_argument("--floor-reps", type=int, default=5, help="raw-floor repetitions per state")
    p.add_argument("--large-rows", type=int, default=LARGE_ROWS, help="rows of the large table")
    p.add_argument("--small-only", action="store_true", help="skip the large state (a quick look)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return p.parse_args(argv)


def describe_store(app: Appliance) -> str:
    """Which store the appliance chose, read from the host (and its readiness check)."""
    ready = app.get("/v1/ready").json()
    store_dir = app.data_dir / "store"
    fs = filesystem_type(store_dir)
    if ready.get("checks", {}).get("store") != "ok":
        return f"store not ready ({ready})"
    if fs == "btrfs" and (app.data_dir / "store.btrfs.img").exists():
        return "btrfs (image, loop-mounted)"
    if fs == "btrfs":
        return "btrfs"
    return f"copy on {fs} (O(size) clones)"


def machine_facts() -> str:
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} cores, {mem_kib / 1024**2:.0f} GiB RAM, /tmp on {filesystem_type(Path('/tmp'))}, "
            f"Linux {platform.release()}, Python {platform.python_version()}, "
            f"load average at the end {os.getloadavg()[0]:.2f}")


def bench_size(name: str, rows: int, hits: int, rebuilds: int, floor_reps: int, *, base: Path,
               app: Appliance, api: ApiSession, rebuild: ClassicRebuild, floor: RawFloor, store: str) -> SizeRow:
    workload = write_workload(name, rows, base)
    row = SizeRow(name, store)
    for i in range(rebuilds):
        result = rebuild.measure(workload, i)
        row.rebuilds.append(result.seconds)
        row.table_bytes, row.database_bytes = result.table_bytes, result.database_bytes
        print(f"[{name}] rebuild {i + 1}/{rebuilds}: {result.seconds:.2f} s", flush=True)
    if name == "large" and row.table_bytes < ONE_GIB:
        raise SystemExit(f"the large table is only {row.table_bytes} bytes; raise --large-rows")

    body = api.upload(workload)
    started = time.perf_counter()
    status, *_ = api.run_job(body, timeout=1800)
    row.cold_build = time.perf_counter() - started
    api.delete_instance(status["result"]["instance_id"])
    print(f"[{name}] first prepare through the API (builds every step): {row.cold_build:.2f} s", flush=True)

    api.delete_instance(api.measure_hit(body).instance_id)  # warm-up, not counted
    for i in range(hits):
        hit = api.measure_hit(body)
        hit.delete_seconds = api.delete_instance(hit.instance_id)
        row.hits.append(hit)
        print(f"[{name}] cache hit {i + 1}/{hits}: {hit.seconds * 1000:.0f} ms "
              f"(instance delete {hit.delete_seconds * 1000:.0f} ms)", flush=True)

    state_path = app.data_dir / "store" / "orgs" / ORG / "states" / status["result"]["state_id"]
    if store.startswith("btrfs") and state_path.is_dir():
        for i in range(floor_reps):
            sample = floor.measure(state_path, i)
            row.floors.append(sample)
            print(f"[{name}] raw floor {i + 1}/{floor_reps}: {sample.seconds * 1000:.0f} ms", flush=True)
    return row


def render(rows: list[SizeRow], seconds: float) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"Run {when}, {seconds:.0f} s in all; {machine_facts()}.", "", results_table(rows), "",
             phase_table(rows)]
    misses = [dominant_phases(r) for r in rows if not r.meets_target]
    if misses:
        parts += ["", *[f"- {m}" for m in misses]]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-bench-", "the appliance mounts a btrfs image and Postgres runs as "
                                     "the unprivileged postgres user")
    if base is None:
        return 2
    started = time.perf_counter()
    app = Appliance(base / "data", free_tcp_port(), port_range=INSTANCE_PORTS,
                    extra_env={"SQLRS_BTRFS_IMAGE_BYTES": str(16 * ONE_GIB),
                               # no periodic reconciler pass inside a measurement (instances are
                               # deleted by the bench itself, so nothing needs reaping)
                               "SQLRS_RECONCILE_INTERVAL_SECONDS": "3600"})
    rebuild = ClassicRebuild(base, free_tcp_port())
    floor = RawFloor(app.data_dir / "store" / "bench-floor", base, free_tcp_port())
    api: ApiSession | None = None
    rows: list[SizeRow] = []
    try:
        app.start()
        api = ApiSession(app.url, app.token)
        store = describe_store(app)
        print(f"appliance up at {app.url}; store: {store}", flush=True)
        common = {"base": base, "app": app, "api": api, "rebuild": rebuild, "floor": floor, "store": store}
        rows.append(bench_size("small", SMALL_ROWS, args.small_hits, args.small_rebuilds, args.floor_reps, **common))
        if not args.small_only:
            rows.append(bench_size("large", args.large_rows, args.large_hits, args.large_rebuilds,
                                   args.floor_reps, **common))
    except BaseException:
        print(f"--- tail of the appliance log ---\n{app.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if api is not None:
            api.close()
        floor.cleanup()
        rebuild.cleanup()
        app.destroy()
        shutil.rmtree(base, ignore_errors=True)

    text = render(rows, time.perf_counter() - started)
    write_outputs(args.out, "prepare", text, chart=lambda path: write_chart(rows, path), samples=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
